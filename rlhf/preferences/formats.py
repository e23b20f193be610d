"""Public preference datasets in their published schemas -> the standard preference format.

Each format names the dataset it mirrors, an adapter (native rows -> candidate pairs or
quarantine records with a reason), the annotator kind and the paper's default filter. Every
candidate then passes the common structural checks of :func:`rlhf.adapters.run_adapter`
(well-formed roles, shared prefix, non-identical answers), so no row is dropped uncounted.

Rows are loaded through `datasets` from a local jsonl / json / parquet file (optionally
gzipped) or, with ``RLHF_ALLOW_HUB=1``, from a hub id. Writers produce the standard table,
the RLHFlow message format and TRL's conversational and plain-text preference formats.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from rlhf.core.config import ConfigError, ExternalSource, SourceFilter
from rlhf.core.datafiles import load_rows
from rlhf.core.messages import Message, content_text, normalize, to_trl_preference
from rlhf.core.schemas import MESSAGES
from rlhf.preferences.adapters import (
    Adapter,
    AdaptResult,
    Candidate,
    Drop,
    Row,
    assistant_turn,
    check_fields,
    check_missing,
    grouped,
    run_adapter,
    user_turn,
)


def _score(v: Any) -> float | None:
    """A rating as a float (CodeUltraFeedback stores ratings as strings); None if not a number."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def _check_ratings(
    i: int, row: Row, cs: Any, rs: Any, fields: tuple[str, str], flt: SourceFilter
) -> Drop | tuple[float, float]:
    """(chosen, rejected) ratings if they are numbers that agree with the label and clear the
    margin, else the reason to quarantine the row."""
    c, r = _score(cs), _score(rs)
    if c is None or r is None:
        bad = fields[0] if c is None else fields[1]
        return Drop(
            i, "invalid_score", bad, f"{bad}={cs if c is None else rs!r} is not a number", row
        )
    if c < r:
        return Drop(
            i, "label_contradicts_scores", fields[0], f"{fields[0]}={c} < {fields[1]}={r}", row
        )
    if c - r < max(flt.min_margin, 1e-9):
        return Drop(i, "below_min_margin", fields[0], f"rating gap {c - r} < {flt.min_margin}", row)
    return c, r


def _rated_pair(
    i: int,
    row: Row,
    prompt: list[dict],
    chosen: str,
    rejected: str,
    cs: Any,
    rs: Any,
    fields: tuple[str, str],
    flt: SourceFilter,
) -> Candidate | Drop:
    """A labelled single-answer pair whose labels must agree with its ratings."""
    checked = _check_ratings(i, row, cs, rs, fields, flt)
    if isinstance(checked, Drop):
        return checked
    return Candidate(
        i, prompt + [assistant_turn(chosen)], prompt + [assistant_turn(rejected)], *checked
    )


# --- HH-RLHF -------------------------------------------------------------------------------

_HH_SPLIT = re.compile(r"\n\n(Human|Assistant):[ ]?")


def parse_hh_transcript(text: str) -> list[Message] | None:
    """'\\n\\nHuman: ...\\n\\nAssistant: ...' -> messages; None if it has no such turns."""
    parts = _HH_SPLIT.split(text)
    if len(parts) < 3 or parts[0].strip():
        return None
    roles = {"Human": "user", "Assistant": "assistant"}
    return [
        {"role": roles[r], "content": c.strip()}
        for r, c in zip(parts[1::2], parts[2::2], strict=True)
    ]


def adapt_hh(rows: list[Row], flt: SourceFilter, rng: random.Random) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := check_fields(row, i, {"chosen": "text", "rejected": "text"}):
            yield d
            continue
        chosen, rejected = parse_hh_transcript(row["chosen"]), parse_hh_transcript(row["rejected"])
        if chosen is None or rejected is None:
            bad = "chosen" if chosen is None else "rejected"
            yield Drop(i, "malformed", bad, "no '\\n\\nHuman:' / '\\n\\nAssistant:' turns", row)
            continue
        # Real HH pairs sometimes differ before the last turn; those are quarantined as
        # prefix_mismatch by the common check rather than silently re-cut.
        yield Candidate(i, chosen, rejected)


# --- UltraFeedback ---------------------------------------------------------------------------


def adapt_ultrafeedback(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        # openbmb/UltraFeedback names the prompt `instruction`; binarised copies use `prompt`.
        key = "prompt" if isinstance(row, dict) and "prompt" in row else "instruction"
        if d := check_fields(row, i, {key: "text", "completions": "list"}):
            yield d
            continue
        comps = row["completions"]
        bad = None
        for j, c in enumerate(comps):
            if d := check_fields(c, i, {"response": "text", "overall_score": "number"}):
                where = f"completions[{j}]" + (f".{d.field}" if d.field else "")
                bad = Drop(i, d.reason, where, d.detail, row)
                break
        bad = bad or next(
            (
                Drop(i, "empty_turn", f"completions[{j}].response", "empty completion", row)
                for j, c in enumerate(comps)
                if not c["response"].strip()
            ),
            None,
        )
        if bad:
            yield bad
            continue
        if len(comps) < 2:
            yield Drop(i, "missing_field", "completions", "fewer than 2 completions", row)
            continue
        best = max(range(len(comps)), key=lambda j: (comps[j]["overall_score"], -j))
        top = comps[best]["overall_score"]
        lower = [
            j for j, c in enumerate(comps) if c["overall_score"] <= top - max(flt.min_margin, 1e-9)
        ]
        if not lower:
            yield Drop(
                i,
                "below_min_margin",
                "completions.overall_score",
                f"no completion scored <= {top} - {flt.min_margin}",
                row,
            )
            continue
        # The paper's recipe: best-rated vs a random lower-rated completion.
        j = rng.choice(lower)
        prompt = [user_turn(row[key])]
        yield Candidate(
            i,
            prompt + [assistant_turn(comps[best]["response"])],
            prompt + [assistant_turn(comps[j]["response"])],
            float(top),
            float(comps[j]["overall_score"]),
        )


# --- HelpSteer ---------------------------------------------------------------------------------

HELPSTEER_ATTRS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


@grouped
def adapt_helpsteer(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {"prompt": "text", "response": "text", **dict.fromkeys(HELPSTEER_ATTRS, "number")},
        ):
            yield d
            continue
        if not row["prompt"].strip() or not row["response"].strip():
            yield Drop(
                i,
                "empty_turn",
                "prompt" if not row["prompt"].strip() else "response",
                "empty text",
                row,
            )
            continue
        out = next((a for a in HELPSTEER_ATTRS if not 0 <= row[a] <= 4), None)
        if out:
            yield Drop(i, "invalid_score", out, f"{out}={row[out]} outside 0-4", row)
            continue
        groups[normalize(row["prompt"])].append(i)
    # Pairs from every two responses to the same prompt, higher helpfulness chosen. A row
    # that ends up in no pair and no pair's quarantine record gets its own record.
    touched: set[int] = set()
    for idx in groups.values():
        if len(idx) == 1:
            yield Drop(
                idx[0], "unpaired", "prompt", "the only response to its prompt", rows[idx[0]]
            )
        for a, b in itertools.combinations(idx, 2):
            ra, rb = rows[a], rows[b]
            if rb["helpfulness"] > ra["helpfulness"]:
                (a, ra), (b, rb) = (b, rb), (a, ra)
            gap = ra["helpfulness"] - rb["helpfulness"]
            if gap < max(flt.min_margin, 1e-9):
                touched.add(a)
                yield Drop(
                    a,
                    "below_min_margin",
                    "helpfulness",
                    f"rows {a} and {b}: helpfulness gap {gap} < {flt.min_margin}",
                    {"row_a": ra, "row_b": rb},
                )
                continue
            touched |= {a, b}
            prompt = [user_turn(ra["prompt"])]
            yield Candidate(
                a,
                prompt + [assistant_turn(ra["response"])],
                prompt + [assistant_turn(rb["response"])],
                float(ra["helpfulness"]),
                float(rb["helpfulness"]),
                suffix=f"-{b}",
            )
    for i in sorted(i for idx in groups.values() if len(idx) > 1 for i in idx if i not in touched):
        yield Drop(
            i,
            "below_min_margin",
            "helpfulness",
            f"no other response to its prompt is {flt.min_margin} or more apart from row {i}",
            rows[i],
        )


# --- SHP ------------------------------------------------------------------------------------------


@grouped
def adapt_shp(rows: list[Row], flt: SourceFilter, rng: random.Random) -> Iterator[Candidate | Drop]:
    per_post: dict[str, list[tuple[float, int, Candidate]]] = defaultdict(list)
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {
                "post_id": "any",
                "history": "text",
                "human_ref_A": "text",
                "human_ref_B": "text",
                "labels": "any",
                "score_A": "number",
                "score_B": "number",
            },
        ):
            yield d
            continue
        sa, sb = row["score_A"], row["score_B"]
        if row["labels"] not in (0, 1):
            yield Drop(i, "invalid_label", "labels", f"labels={row['labels']} is not 0 or 1", row)
            continue
        if sa == sb or (row["labels"] == 1) != (sa > sb):
            yield Drop(
                i,
                "label_contradicts_scores",
                "labels",
                f"labels={row['labels']} but score_A={sa}, score_B={sb}",
                row,
            )
            continue
        ratio = max(sa, sb) / max(min(sa, sb), 1)
        if ratio < flt.min_ratio:
            yield Drop(
                i, "below_min_ratio", "score_ratio", f"ratio {ratio:.3f} < {flt.min_ratio}", row
            )
            continue
        prompt = [user_turn(row["history"])]
        a, b = assistant_turn(row["human_ref_A"]), assistant_turn(row["human_ref_B"])
        c, r = (a, b) if row["labels"] == 1 else (b, a)
        cand = Candidate(i, prompt + [c], prompt + [r], float(max(sa, sb)), float(min(sa, sb)))
        per_post[row["post_id"]].append((ratio, i, cand))
    for post, cands in per_post.items():
        # Keep the most clear-cut pairs of each post (highest ratio first, then row order).
        cands.sort(key=lambda t: (-t[0], t[1]))
        cap = flt.max_pairs_per_prompt or len(cands)
        for _, _, cand in cands[:cap]:
            yield cand
        for ratio, i, _ in cands[cap:]:
            yield Drop(
                i,
                "over_pair_cap",
                "post_id",
                f"post {post} already has {cap} pairs with a higher ratio than {ratio:.3f}",
                rows[i],
            )


# --- PKU-SafeRLHF -------------------------------------------------------------------------------


def adapt_pku_safe(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    id_field = f"{flt.label}_response_id"
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {
                "prompt": "text",
                "response_0": "text",
                "response_1": "text",
                id_field: "any",
                "is_response_0_safe": "any",
                "is_response_1_safe": "any",
            },
        ):
            yield d
            continue
        k = row[id_field]
        if k not in (0, 1):
            yield Drop(i, "invalid_label", id_field, f"{id_field}={k} is not 0 or 1", row)
            continue
        safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        if flt.label == "safer" and not safe[k] and safe[1 - k]:
            yield Drop(
                i,
                "label_contradicts_flags",
                id_field,
                f"response_{k} is labelled safer but is_response_{k}_safe=False "
                f"and is_response_{1 - k}_safe=True",
                row,
            )
            continue
        prompt = [user_turn(row["prompt"])]
        yield Candidate(
            i,
            prompt + [assistant_turn(row[f"response_{k}"])],
            prompt + [assistant_turn(row[f"response_{1 - k}"])],
        )


# --- UltraInteract ----------------------------------------------------------------------------------

_UI_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


def adapt_ultrainteract(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := check_fields(row, i, {"trajectory": "list", "chosen": "text", "rejected": "text"}):
            yield d
            continue
        if not row["trajectory"]:
            yield Drop(i, "empty_turn", "trajectory", "empty trajectory", row)
            continue
        bad = next(
            (
                Drop(i, d.reason, f"trajectory[{j}].{d.field}", d.detail, row)
                for j, t in enumerate(row["trajectory"])
                if (d := check_fields(t, i, {"from": "text"}, {"value": "text"}))
            ),
            None,
        )
        if bad:
            yield bad
            continue
        try:
            context = [
                {"role": _UI_ROLES[t["from"]], "content": t.get("value") or ""}
                for t in row["trajectory"]
            ]
        except KeyError as e:
            yield Drop(i, "bad_roles", "trajectory", f"unknown speaker {e}", row)
            continue
        yield Candidate(
            i,
            context + [assistant_turn(row["chosen"])],
            context + [assistant_turn(row["rejected"])],
        )


# --- CodeUltraFeedback (coseus/CodeUltraFeedback) ---------------------------------------------


def adapt_codeultrafeedback(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """instruction + responses[{model, response}] rated by annotations[{model, rating,
    rationale}] (ratings are strings "1".."5"): best-rated vs a random completion rated at
    least `min_margin` lower, as for UltraFeedback."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row, i, {"instruction": "text", "responses": "list", "annotations": "list"}
        ):
            yield d
            continue
        texts = {r.get("model"): r.get("response") for r in row["responses"] or []}
        rated = []
        bad = None
        for j, a in enumerate(row["annotations"] or []):
            s = _score(a.get("rating"))
            if s is None:
                bad = Drop(
                    i,
                    "invalid_score",
                    f"annotations[{j}].rating",
                    f"rating {a.get('rating')!r} is not a number",
                    row,
                )
                break
            text = texts.get(a.get("model"))
            if text is None or not str(text).strip():
                bad = Drop(
                    i,
                    "empty_turn",
                    f"responses[{a.get('model')}]",
                    "rated model has no response",
                    row,
                )
                break
            rated.append((s, j, text))
        if bad:
            yield bad
            continue
        if len(rated) < 2:
            yield Drop(i, "missing_field", "annotations", "fewer than 2 rated responses", row)
            continue
        top = max(rated, key=lambda t: (t[0], -t[1]))
        lower = [t for t in rated if t[0] <= top[0] - max(flt.min_margin, 1e-9)]
        if not lower:
            yield Drop(
                i,
                "below_min_margin",
                "annotations.rating",
                f"no response rated <= {top[0]} - {flt.min_margin}",
                row,
            )
            continue
        low = rng.choice(lower)
        prompt = [user_turn(row["instruction"])]
        yield Candidate(
            i, prompt + [assistant_turn(top[2])], prompt + [assistant_turn(low[2])], top[0], low[0]
        )


# --- argilla/distilabel-math-preference-dpo -------------------------------------------------


def adapt_argilla_math(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := check_fields(
            row, i, {"instruction": "text", "chosen_response": "text", "rejected_response": "text"}
        ):
            yield d
            continue
        yield _rated_pair(
            i,
            row,
            [user_turn(row["instruction"])],
            row["chosen_response"],
            row["rejected_response"],
            row.get("chosen_rating"),
            row.get("rejected_rating"),
            ("chosen_rating", "rejected_rating"),
            flt,
        )


# --- argilla/distilabel-intel-orca-dpo-pairs -----------------------------------------------


def adapt_orca_dpo(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """system + input, chosen / rejected, rated by `rating` (two scores) with `status`
    tie / unchanged / swapped. Ties and GSM8K-train contamination are quarantined, as the
    dataset card recommends."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row, i, {"input": "text", "chosen": "text", "rejected": "text"}, {"system": "text"}
        ):
            yield d
            continue
        if row.get("status") == "tie":
            yield Drop(i, "tied_rating", "status", "status is 'tie'", row)
            continue
        if row.get("in_gsm8k_train"):
            yield Drop(
                i,
                "benchmark_contamination",
                "in_gsm8k_train",
                "prompt is in the GSM8K train set",
                row,
            )
            continue
        prompt = (
            [{"role": "system", "content": row["system"]}]
            if (row.get("system") or "").strip()
            else []
        ) + [user_turn(row["input"])]
        ratings = row.get("rating")
        if not ratings:  # unrated rows keep their original label, without scores
            yield Candidate(
                i,
                prompt + [assistant_turn(row["chosen"])],
                prompt + [assistant_turn(row["rejected"])],
            )
            continue
        if len(ratings) != 2 or any(_score(x) is None for x in ratings):
            yield Drop(
                i, "invalid_score", "rating", f"expected 2 numeric ratings, got {ratings!r}", row
            )
            continue
        hi, lo = max(ratings), min(ratings)
        cs = _score(row.get("chosen_score"))
        c = hi if cs is None else cs
        # The other rating: the lower one, unless the chosen response holds the lower one.
        r = lo if c >= hi else hi
        yield _rated_pair(
            i, row, prompt, row["chosen"], row["rejected"], c, r, ("chosen_score", "rating"), flt
        )


_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "system": "system",
}


def _message(m: Any) -> dict | None:
    """One message as {role, content}: OpenAI style (`role`, `content`, which may be a list of
    typed parts) or ShareGPT style (`from`, `value`); None if it is neither."""
    if not isinstance(m, dict):
        return None
    role = m.get("role", m.get("from"))
    content = content_text(m["content"] if "content" in m else m.get("value"))
    if not isinstance(role, str) or content is None:
        return None
    return {"role": _ROLES.get(role, role), "content": content}


def _messages(v: Any) -> list[dict] | None:
    """A message list, or None if `v` is not a list or any item is not a text message (a
    defect is never skipped silently)."""
    if not isinstance(v, list):
        return None
    msgs = [_message(m) for m in v]
    return None if any(m is None for m in msgs) else msgs


def _pair_messages(
    i: int, row: Row, chosen: Any, rejected: Any, detail: str
) -> Drop | tuple[list[dict], list[dict]]:
    """Both sides as message lists, or a `malformed` quarantine naming the side that is not."""
    c, r = _messages(chosen), _messages(rejected)
    if c is None or r is None:
        return Drop(i, "malformed", "chosen" if c is None else "rejected", detail, row)
    return c, r


def _read_pair(i: int, row: Row) -> Drop | tuple[list[dict], list[dict]]:
    """`chosen` / `rejected` present and both message lists, else the row's quarantine."""
    if d := check_missing(row, i, ("chosen", "rejected")):
        return d
    return _pair_messages(
        i, row, row["chosen"], row["rejected"], "not a list of text messages ({role, content})"
    )


# --- argilla/distilabel-capybara-dpo-7k-binarized (multi-turn) ----------------------------


def adapt_capybara(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        msgs = _read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        if row.get("rating_chosen") is None and row.get("rating_rejected") is None:
            yield Candidate(i, chosen, rejected)
            continue
        checked = _check_ratings(
            i,
            row,
            row.get("rating_chosen"),
            row.get("rating_rejected"),
            ("rating_chosen", "rating_rejected"),
            flt,
        )
        yield checked if isinstance(checked, Drop) else Candidate(i, chosen, rejected, *checked)


# --- RLHFlow standard and TRL preference formats --------------------------------------------


def adapt_rlhflow(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """chosen / rejected as full message lists sharing all turns but the last, optional
    chosen_score / rejected_score (checked against the label when present)."""
    for i, row in enumerate(rows):
        msgs = _read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        cs, rs = _score(row.get("chosen_score")), _score(row.get("rejected_score"))
        if cs is not None and rs is not None and cs < rs:
            yield Drop(
                i,
                "label_contradicts_scores",
                "chosen_score",
                f"chosen_score={cs} < rejected_score={rs}",
                row,
            )
            continue
        yield Candidate(i, chosen, rejected, cs, rs)


def adapt_trl(rows: list[Row], flt: SourceFilter, rng: random.Random) -> Iterator[Candidate | Drop]:
    """TRL preference datasets: conversational with an explicit prompt (prompt / chosen /
    rejected message lists), conversational implicit (chosen / rejected full conversations),
    or plain text with an explicit prompt (strings). Plain text without a prompt cannot be split
    into turns and is quarantined."""
    for i, row in enumerate(rows):
        if d := check_missing(row, i, ("chosen", "rejected")):
            yield d
            continue
        prompt, chosen, rejected = row.get("prompt"), row["chosen"], row["rejected"]
        if isinstance(chosen, str) and isinstance(rejected, str):
            if not isinstance(prompt, str):
                yield Drop(
                    i,
                    "missing_field",
                    "prompt",
                    "plain-text preference without a prompt cannot be split into turns",
                    row,
                )
                continue
            p = [user_turn(prompt)]
            yield Candidate(i, p + [assistant_turn(chosen)], p + [assistant_turn(rejected)])
            continue
        msgs = _pair_messages(
            i, row, chosen, rejected, "expected both strings or both message lists"
        )
        if isinstance(msgs, Drop):
            yield msgs
            continue
        c, r = msgs
        if prompt is not None:
            p = _messages(prompt)
            if p is None:
                yield Drop(i, "malformed", "prompt", "prompt is not a message list", row)
                continue
            c, r = p + c, p + r
        yield Candidate(i, c, r)


# --- HuggingFaceH4/ultrafeedback_binarized ------------------------------------------------------


def adapt_ultrafeedback_binarized(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """prompt (string), chosen / rejected (full conversations: the user turn, then the
    answer), score_chosen / score_rejected (kept, and checked against the label)."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {"prompt": "text", "chosen": "list", "rejected": "list"},
            {"score_chosen": "number", "score_rejected": "number"},
        ):
            yield d
            continue
        msgs = _read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        # Some copies hold only the answer in chosen / rejected; the prompt is then prepended.
        p = [user_turn(row["prompt"])]
        chosen = chosen if chosen[:1] and chosen[0]["role"] != "assistant" else p + chosen
        rejected = rejected if rejected[:1] and rejected[0]["role"] != "assistant" else p + rejected
        cs, rs = row.get("score_chosen"), row.get("score_rejected")
        if cs is None or rs is None:
            yield Candidate(i, chosen, rejected)
            continue
        if cs == rs:
            yield Drop(
                i, "tied_rating", "score_chosen", f"score_chosen = score_rejected = {cs}", row
            )
            continue
        checked = _check_ratings(i, row, cs, rs, ("score_chosen", "score_rejected"), flt)
        yield checked if isinstance(checked, Drop) else Candidate(i, chosen, rejected, *checked)


# --- ShareGPT / LLaMA-Factory preference data ---------------------------------------------------


def _one_answer(v: Any) -> list[dict] | None:
    """A ShareGPT `chosen` / `rejected`: one {from, value} object, or a list of messages."""
    return _messages([v]) if isinstance(v, dict) else _messages(v)


def adapt_sharegpt(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """LLaMA-Factory's ShareGPT preference rows: `conversations` ({from, value} turns; or
    `messages` with {role, content}), an optional `system` string, and `chosen` / `rejected`
    as one {from, value} answer each (or message lists). Multi-turn context is kept whole."""
    for i, row in enumerate(rows):
        key = "messages" if isinstance(row, dict) and "messages" in row else "conversations"
        if d := check_fields(
            row,
            i,
            {key: "list", "chosen": "object or list", "rejected": "object or list"},
            {"system": "text"},
        ):
            yield d
            continue
        context = _messages(row[key])
        if context is None:
            yield Drop(i, "malformed", key, "not a list of {from, value} turns", row)
            continue
        if context and context[0]["role"] != "system" and (row.get("system") or "").strip():
            context = [{"role": "system", "content": row["system"]}, *context]
        c, r = _one_answer(row["chosen"]), _one_answer(row["rejected"])
        if c is None or r is None:
            bad = "chosen" if c is None else "rejected"
            yield Drop(i, "malformed", bad, "not a {from, value} answer", row)
            continue
        yield Candidate(i, context + c, context + r)


# --- Alpaca-style preference rows (LLaMA-Factory `ranking: true`) -------------------------------


def alpaca_context(row: Row, i: int) -> list[dict] | Drop:
    """Alpaca fields as messages: `system`, `history` ([[query, answer], ...]) as earlier
    turns, then `instruction` and `input` joined by a newline (LLaMA-Factory's rule), byte for
    byte; an empty `input` adds nothing."""
    if d := check_fields(
        row, i, {"instruction": "text"}, {"input": "text", "system": "text", "history": "list"}
    ):
        return d
    msgs = (
        [{"role": "system", "content": row["system"]}] if (row.get("system") or "").strip() else []
    )
    for j, turn in enumerate(row.get("history") or []):
        if not (
            isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)
        ):
            return Drop(
                i, "malformed", f"history[{j}]", "not a [query, answer] pair of strings", row
            )
        msgs += [user_turn(turn[0]), assistant_turn(turn[1])]
    text = row["instruction"]
    if (row.get("input") or "").strip():
        text = f"{text}\n{row['input']}" if text.strip() else row["input"]
    return [*msgs, user_turn(text)]


def adapt_alpaca(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """instruction (+ input, system, history), chosen / rejected answer strings."""
    for i, row in enumerate(rows):
        if d := check_fields(row, i, {"instruction": "text", "chosen": "text", "rejected": "text"}):
            yield d
            continue
        ctx = alpaca_context(row, i)
        if isinstance(ctx, Drop):
            yield ctx
            continue
        yield Candidate(
            i, ctx + [assistant_turn(row["chosen"])], ctx + [assistant_turn(row["rejected"])]
        )


# --- Pairwise human-judged sets (PandaLM test set) ----------------------------------------------

_JUDGE_FIELDS = ("annotator1", "annotator2", "annotator3")


def adapt_pairwise_judged(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """instruction + input, response1 / response2, and annotator labels (1: response1 is
    better, 2: response2 is better, 0: tie). The majority label decides; a row without a
    strict majority for one response (ties included) is quarantined as `no_majority`. Scores:
    the number of annotators on each side."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {"instruction": "text", "response1": "text", "response2": "text"},
            dict.fromkeys(_JUDGE_FIELDS, "integer"),
        ):
            yield d
            continue
        labels = {f: row[f] for f in _JUDGE_FIELDS if row.get(f) is not None}
        if not labels:
            yield Drop(i, "missing_field", "annotator1", "no annotator label", row)
            continue
        if bad := next((f for f, v in labels.items() if v not in (0, 1, 2)), None):
            yield Drop(i, "invalid_label", bad, f"{bad}={labels[bad]} is not 0, 1 or 2", row)
            continue
        votes = [list(labels.values()).count(k) for k in (1, 2)]
        if votes[0] == votes[1] or max(votes) * 2 <= len(labels):
            yield Drop(i, "no_majority", "annotator1", f"labels {list(labels.values())}", row)
            continue
        ctx = alpaca_context(row, i)
        if isinstance(ctx, Drop):
            yield ctx
            continue
        win = 1 if votes[0] > votes[1] else 2
        a, b = row[f"response{win}"], row[f"response{3 - win}"]
        yield Candidate(
            i,
            ctx + [assistant_turn(a)],
            ctx + [assistant_turn(b)],
            float(max(votes)),
            float(min(votes)),
        )


# --- The registry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Format:
    """A preference dataset's native schema and how to read it."""

    name: str
    adapter: Adapter
    annotator: str
    mirrors: str
    """The public dataset (hub id) whose published schema this adapter reads."""
    default_filter: SourceFilter
    """The paper's filtering rule for it (overridable with `rlhf convert` flags / params)."""
    fields: dict[str, str]
    """Published fields every row needs, with their kind; `--from auto` matches rows on them."""
    looks_like: Callable[[Row], bool] = lambda row: True
    """Extra test for `--from auto` where field names alone are ambiguous."""


def _hh_transcript(row: Row) -> bool:
    return "\n\nHuman:" in str(row.get("chosen"))


def _no_scores(row: Row) -> bool:
    return "score_chosen" not in row and "rating_chosen" not in row


T, N, L, A = "text", "number", "list", "any"
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "hh-rlhf",
            adapt_hh,
            "human_bt",
            "Anthropic/hh-rlhf",
            SourceFilter(),
            {"chosen": T, "rejected": T},
            _hh_transcript,
        ),
        Format(
            "shp",
            adapt_shp,
            "reddit_votes",
            "stanfordnlp/SHP",
            SourceFilter(min_ratio=2.0, max_pairs_per_prompt=5),
            {
                "post_id": A,
                "history": T,
                "human_ref_A": T,
                "human_ref_B": T,
                "labels": A,
                "score_A": N,
                "score_B": N,
            },
        ),
        Format(
            "helpsteer",
            adapt_helpsteer,
            "human_attributes_0_4",
            "nvidia/HelpSteer",
            SourceFilter(min_margin=1.0),
            {"prompt": T, "response": T, "helpfulness": N, "correctness": N},
        ),
        Format(
            "pku-saferlhf",
            adapt_pku_safe,
            "human_safety",
            "PKU-Alignment/PKU-SafeRLHF",
            SourceFilter(label="safer"),
            {"prompt": T, "response_0": T, "response_1": T, "safer_response_id": A},
        ),
        Format(
            "ultrafeedback",
            adapt_ultrafeedback,
            "ai_rating_1_10",
            "openbmb/UltraFeedback",
            SourceFilter(min_margin=1.0),
            {"instruction": T, "completions": L},
        ),
        Format(
            "ultrafeedback-binarized",
            adapt_ultrafeedback_binarized,
            "ai_rating_1_10",
            "HuggingFaceH4/ultrafeedback_binarized",
            SourceFilter(),
            {"prompt": T, "chosen": L, "rejected": L, "score_chosen": N, "score_rejected": N},
        ),
        Format(
            "ultrainteract",
            adapt_ultrainteract,
            "answer_correctness",
            "openbmb/UltraInteract_pair",
            SourceFilter(),
            {"trajectory": L, "chosen": T, "rejected": T},
        ),
        Format(
            "codeultrafeedback",
            adapt_codeultrafeedback,
            "ai_rating_1_5",
            "coseus/CodeUltraFeedback",
            SourceFilter(min_margin=1.0),
            {"instruction": T, "responses": L, "annotations": L},
        ),
        Format(
            "argilla-math",
            adapt_argilla_math,
            "ai_rating_1_10",
            "argilla/distilabel-math-preference-dpo",
            SourceFilter(min_margin=1.0),
            {"instruction": T, "chosen_response": T, "rejected_response": T},
        ),
        Format(
            "orca-dpo",
            adapt_orca_dpo,
            "ai_rating_1_10",
            "argilla/distilabel-intel-orca-dpo-pairs",
            SourceFilter(min_margin=1.0),
            {"input": T, "chosen": T, "rejected": T, "system": T},
        ),
        Format(
            "capybara",
            adapt_capybara,
            "ai_rating_1_5",
            "argilla/distilabel-capybara-dpo-7k-binarized",
            SourceFilter(min_margin=1.0),
            {"chosen": L, "rejected": L, "rating_chosen": N, "rating_rejected": N},
        ),
        Format(
            "sharegpt",
            adapt_sharegpt,
            "unknown",
            "hiyouga/LLaMA-Factory sharegpt preference data (`ranking: true`)",
            SourceFilter(),
            {"conversations": L, "chosen": "object or list", "rejected": "object or list"},
        ),
        Format(
            "alpaca",
            adapt_alpaca,
            "unknown",
            "hiyouga/LLaMA-Factory alpaca preference data (`ranking: true`)",
            SourceFilter(),
            {"instruction": T, "chosen": T, "rejected": T},
        ),
        Format(
            "pairwise-judged",
            adapt_pairwise_judged,
            "human_majority",
            "WeOpenML/PandaLM test set (response1/2, annotator1..3)",
            SourceFilter(),
            {"instruction": T, "response1": T, "response2": T, "annotator1": N},
        ),
        Format(
            "rlhflow",
            adapt_rlhflow,
            "unknown",
            "RLHFlow/*-standard",
            SourceFilter(),
            {"chosen": L, "rejected": L},
            _no_scores,
        ),
        Format(
            "trl",
            adapt_trl,
            "unknown",
            "trl-lib/* preference datasets",
            SourceFilter(),
            {"prompt": "text or list", "chosen": "text or list", "rejected": "text or list"},
            lambda row: isinstance(row.get("prompt"), type(row.get("chosen"))),
        ),
    )
}


# The embedded world's sources are written in these public schemas (rlhf/world/sources.py),
# so they go through the same adapters as the real datasets they stand in for.
EMBEDDED_FORMATS: dict[str, str] = {
    "hh": "hh-rlhf",
    "ultrafeedback": "ultrafeedback",
    "helpsteer": "helpsteer",
    "shp": "shp",
    "pku_safe": "pku-saferlhf",
    "ultrainteract": "ultrainteract",
}


def matches(fmt: Format, row: Any) -> int:
    """How well `row` fits `fmt`: 0 if a needed field is absent or of another kind, else
    1 + the number of the format's fields it has (more specific formats win ties)."""
    if check_fields(row, 0, fmt.fields) is not None:
        return 0
    return 1 + len(fmt.fields) if fmt.looks_like(row) else 0


def sniff(rows: list[Row], sample: int = 200) -> tuple[str | None, float]:
    """(the format most of the first `sample` rows match, the share that match it)."""
    head = [r for r in rows[:sample] if isinstance(r, dict)]
    if not head:
        return None, 0.0
    best, best_key = None, (0, 0)
    for name, fmt in FORMATS.items():
        scores = [matches(fmt, r) for r in head]
        hits = sum(1 for x in scores if x)
        key = (hits, sum(scores))
        if hits and key > best_key:
            best, best_key = name, key
    return best, best_key[0] / len(head)


def convert_rows(
    fmt: str,
    rows: list[Row],
    flt: SourceFilter | None = None,
    seed: int = 0,
    source: str | None = None,
) -> AdaptResult:
    """Adapt native rows of format `fmt`; returns kept pairs and quarantine records."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    f = FORMATS[fmt]
    name = source or fmt
    return run_adapter(
        f.adapter,
        f.annotator,
        name,
        rows,
        flt or f.default_filter,
        random.Random(f"{seed}:convert/{name}"),
    )


def check_formats(section: str, sources: Mapping[str, ExternalSource], known: Mapping) -> None:
    """Refuse a params source whose format the registry `known` lacks, naming its key
    (`mix.external.<name>.format`). The registries check their own names so that loading
    params (config) imports none of them."""
    for name, src in sources.items():
        if src.format not in known:
            raise ConfigError(
                f"{section}.external.{name}.format: unknown format {src.format!r}; "
                f"known: {', '.join(known)}"
            )


def load_external(src) -> list[Row]:
    """Rows of a params `ExternalSource` (a local path or a hub id)."""
    return load_rows(src.path or src.hub, src.split, src.revision, src.max_rows)


# --- Writers ------------------------------------------------------------------------------------

OUTPUTS = ("standard", "rlhflow", "trl", "trl-text")


def to_output(prefs: pa.Table, to: str) -> tuple[pa.Table, int]:
    """A standard preference table in output format `to`; returns (table, rows that the format
    cannot represent). Only `trl-text` can lose rows: it has no place for multi-turn or system
    context, and such rows are counted, not silently dropped."""
    if to == "standard":
        return prefs, 0
    rows = prefs.select(["chosen", "rejected", "chosen_score", "rejected_score"]).to_pylist()
    if to == "rlhflow":
        # Typed columns even when no row has a score (a column of type null breaks readers).
        schema = pa.schema(
            [
                ("chosen", MESSAGES),
                ("rejected", MESSAGES),
                ("chosen_score", pa.float64()),
                ("rejected_score", pa.float64()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema), 0
    if to == "trl":
        schema = pa.schema([("prompt", MESSAGES), ("chosen", MESSAGES), ("rejected", MESSAGES)])
        return pa.Table.from_pylist([to_trl_preference(r) for r in rows], schema=schema), 0
    if to == "trl-text":
        out, lost = [], 0
        for r in rows:
            ctx = r["chosen"][:-1]
            if len(ctx) != 1 or ctx[0]["role"] != "user":
                lost += 1
                continue
            out.append(
                {
                    "prompt": ctx[0]["content"],
                    "chosen": r["chosen"][-1]["content"],
                    "rejected": r["rejected"][-1]["content"],
                }
            )
        schema = pa.schema(
            [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())]
        )
        return pa.Table.from_pylist(out, schema=schema), lost
    raise ValueError(f"unknown output format {to!r}; known: {', '.join(OUTPUTS)}")
