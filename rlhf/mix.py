"""Per-source adapters and filters -> one standard-format preference mix.

Each adapter reads its source's native rows and yields either a candidate pair or a
quarantine record with a reason. Every candidate then passes the common structural checks
(:func:`rlhf.messages.pair_problem`). Nothing is dropped without a quarantine row.

Quarantine reasons:
  missing_field, empty_turn, bad_roles, malformed, prefix_mismatch, identical_pair,
  invalid_score, invalid_label, label_contradicts_scores, label_contradicts_flags,
  below_min_margin, below_min_ratio, over_pair_cap, tied_rating, no_majority, wrong_type,
  invalid_json, benchmark_contamination, unpaired
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from rlhf.config import MixConfig, SourceFilter
from rlhf.datafiles import BadRow
from rlhf.messages import Message, normalize, pair_problem, prompt_id
from rlhf.schemas import PREFERENCES, QUARANTINE

Row = dict[str, Any]

FILTER_REASONS = frozenset(
    {
        "below_min_margin",
        "below_min_ratio",
        "over_pair_cap",
        "tied_rating",
        "no_majority",
        "unpaired",
        "identical_pair",
        "benchmark_contamination",
    }
)
"""Reasons that apply a dataset's selection rule to a sound row; every other reason is a
defect of the row (what `rlhf convert --max-quarantine` bounds)."""


@dataclass
class Candidate:
    source_row: int
    chosen: list[Message]
    rejected: list[Message]
    chosen_score: float | None = None
    rejected_score: float | None = None
    suffix: str = ""


@dataclass
class Drop:
    source_row: int
    reason: str
    field: str
    detail: str
    raw: Any = None


@dataclass
class AdaptResult:
    source: str
    raw_rows: int
    pairs: list[Row] = field(default_factory=list)
    quarantine: list[Row] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(q["reason"] for q in self.quarantine).items()))


def _user(text: str) -> Message:
    return {"role": "user", "content": text}


def _assistant(text: str) -> Message:
    return {"role": "assistant", "content": text}


_KINDS: dict[str, Callable[[Any], bool]] = {
    "text": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "list": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "text or list": lambda v: isinstance(v, str | list),
    "text or object": lambda v: isinstance(v, str | dict),
    "object or list": lambda v: isinstance(v, dict | list),
    "any": lambda v: True,
}


def _type_name(v: Any) -> str:
    return {str: "text", bool: "a boolean", list: "a list", dict: "an object"}.get(
        type(v), "a number" if isinstance(v, int | float) else type(v).__name__
    )


def _fields(row: Row, i: int, spec: dict[str, str], optional: dict[str, str] | None = None):
    """A `missing_field` or `wrong_type` quarantine naming the dataset's own field, or None.
    `spec`: required field -> kind (a key of _KINDS); `optional`: checked when not null."""
    if not isinstance(row, dict):
        return Drop(i, "malformed", "", f"row is {_type_name(row)}, not an object", row)
    for n in spec:
        if row.get(n) is None:
            return Drop(i, "missing_field", n, f"{n} is missing or null", row)
    for n, kind in {**spec, **(optional or {})}.items():
        v = row.get(n)
        if v is not None and not _KINDS[kind](v):
            return Drop(i, "wrong_type", n, f"{n} is {_type_name(v)}, expected {kind}", row)
    return None


def _missing(row: Row, i: int, names: tuple[str, ...]) -> Drop | None:
    return _fields(row, i, dict.fromkeys(names, "any"))


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
        if d := _fields(row, i, {"chosen": "text", "rejected": "text"}):
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
        if d := _fields(row, i, {key: "text", "completions": "list"}):
            yield d
            continue
        comps = row["completions"]
        bad = None
        for j, c in enumerate(comps):
            if d := _fields(c, i, {"response": "text", "overall_score": "number"}):
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
        prompt = [_user(row[key])]
        yield Candidate(
            i,
            prompt + [_assistant(comps[best]["response"])],
            prompt + [_assistant(comps[j]["response"])],
            float(top),
            float(comps[j]["overall_score"]),
        )


# --- HelpSteer ---------------------------------------------------------------------------------

HELPSTEER_ATTRS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def adapt_helpsteer(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if d := _fields(
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
            prompt = [_user(ra["prompt"])]
            yield Candidate(
                a,
                prompt + [_assistant(ra["response"])],
                prompt + [_assistant(rb["response"])],
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


def adapt_shp(rows: list[Row], flt: SourceFilter, rng: random.Random) -> Iterator[Candidate | Drop]:
    per_post: dict[str, list[tuple[float, int, Candidate]]] = defaultdict(list)
    for i, row in enumerate(rows):
        if d := _fields(
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
        prompt = [_user(row["history"])]
        a, b = _assistant(row["human_ref_A"]), _assistant(row["human_ref_B"])
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
        if d := _fields(
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
        prompt = [_user(row["prompt"])]
        yield Candidate(
            i,
            prompt + [_assistant(row[f"response_{k}"])],
            prompt + [_assistant(row[f"response_{1 - k}"])],
        )


# --- UltraInteract ----------------------------------------------------------------------------------

_UI_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


def adapt_ultrainteract(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := _fields(row, i, {"trajectory": "list", "chosen": "text", "rejected": "text"}):
            yield d
            continue
        if not row["trajectory"]:
            yield Drop(i, "empty_turn", "trajectory", "empty trajectory", row)
            continue
        bad = next(
            (
                Drop(i, d.reason, f"trajectory[{j}].{d.field}", d.detail, row)
                for j, t in enumerate(row["trajectory"])
                if (d := _fields(t, i, {"from": "text"}, {"value": "text"}))
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
            i, context + [_assistant(row["chosen"])], context + [_assistant(row["rejected"])]
        )


ADAPTERS: dict[str, tuple[Callable[..., Iterator[Candidate | Drop]], str]] = {
    "hh": (adapt_hh, "human_bt"),
    "ultrafeedback": (adapt_ultrafeedback, "ai_rating_1_10"),
    "helpsteer": (adapt_helpsteer, "human_attributes_0_4"),
    "shp": (adapt_shp, "reddit_votes"),
    "pku_safe": (adapt_pku_safe, "human_safety"),
    "ultrainteract": (adapt_ultrainteract, "answer_correctness"),
}


def _raw_json(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)


def adapt(source: str, rows: list[Row], flt: SourceFilter, seed: int) -> AdaptResult:
    """Run `source`'s adapter and the common checks over its native rows."""
    fn, annotator = ADAPTERS[source]
    return run_adapter(fn, annotator, source, rows, flt, random.Random(f"{seed}:mix/{source}"))


GROUPED: set[Callable[..., Iterator[Candidate | Drop]]] = {adapt_helpsteer, adapt_shp}
"""Adapters that pair rows with each other; every other adapter reads one row at a time."""


def _isolated(fn, rows: list[Row], flt: SourceFilter, rng: random.Random):
    """The adapter's items with each defect confined to its row: a line that was not JSON is
    quarantined as `invalid_json`, and a row-at-a-time adapter runs on each row alone, so an
    unforeseen shape in one row (an exception) quarantines that row as `malformed` instead of
    aborting the run. The rng is consumed in row order either way, so results do not change."""
    bad = {i for i, r in enumerate(rows) if isinstance(r, BadRow)}
    for i in sorted(bad):
        yield Drop(i, "invalid_json", "", rows[i].error, rows[i].text)
    if fn in GROUPED:
        clean = [{} if i in bad else r for i, r in enumerate(rows)]
        yield from (item for item in fn(clean, flt, rng) if item.source_row not in bad)
        return
    for i, row in enumerate(rows):
        if i in bad:
            continue
        try:
            items = list(fn([row], flt, rng))
        except Exception as e:  # noqa: BLE001 - any failure is this row's, reported with it
            items = [Drop(0, "malformed", "", f"{type(e).__name__}: {e}", row)]
        for item in items:
            item.source_row = i
            yield item


def run_adapter(
    fn: Callable[..., Iterator[Candidate | Drop]],
    annotator: str,
    source: str,
    rows: list[Row],
    flt: SourceFilter,
    rng: random.Random,
) -> AdaptResult:
    """Apply an adapter, then the common structural checks; every row ends up as a pair or a
    quarantine record."""
    res = AdaptResult(source, len(rows))
    for item in _isolated(fn, rows, flt, rng):
        if isinstance(item, Candidate):
            problem = pair_problem(item.chosen, item.rejected)
            if problem:
                reason, fld, detail = problem
                item = Drop(item.source_row, reason, fld, detail, rows[item.source_row])
        if isinstance(item, Drop):
            res.quarantine.append(
                {
                    "source": source,
                    "source_row": item.source_row,
                    "reason": item.reason,
                    "field": item.field,
                    "detail": item.detail,
                    "raw_json": _raw_json(item.raw),
                }
            )
            continue
        cs, rs = item.chosen_score, item.rejected_score
        res.pairs.append(
            {
                "pair_id": f"{source}-{item.source_row:07d}{item.suffix}",
                "prompt_id": prompt_id(item.chosen[:-1]),
                "source": source,
                "chosen": item.chosen,
                "rejected": item.rejected,
                "chosen_score": cs,
                "rejected_score": rs,
                "margin": cs - rs if cs is not None and rs is not None else None,
                "annotator": annotator,
                "source_row": item.source_row,
            }
        )
    return res


def build_mix(
    cfg: MixConfig, raw: dict[str, list[Row]]
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(preferences, quarantine, filter report) for the recipe `cfg.recipe`."""
    pairs: list[Row] = []
    quarantine: list[Row] = []
    report: dict[str, Any] = {}
    for source in cfg.recipes[cfg.recipe]:
        if source in cfg.external:
            from rlhf.formats import FORMATS  # formats builds on this module

            fmt = FORMATS[cfg.external[source].format]
            res = run_adapter(
                fmt.adapter,
                fmt.annotator,
                source,
                raw[source],
                cfg.filters.get(source, fmt.default_filter),
                random.Random(f"{cfg.seed}:mix/{source}"),
            )
        else:
            res = adapt(source, raw[source], cfg.filters.get(source, SourceFilter()), cfg.seed)
        pairs += res.pairs
        quarantine += res.quarantine
        report[source] = {
            "raw_rows": res.raw_rows,
            "kept_pairs": len(res.pairs),
            "quarantined": len(res.quarantine),
            "reasons": res.reasons(),
        }
    report["total"] = {
        "kept_pairs": len(pairs),
        "quarantined": len(quarantine),
        "recipe": cfg.recipe,
    }
    return (
        pa.Table.from_pylist(pairs, schema=PREFERENCES),
        pa.Table.from_pylist(quarantine, schema=QUARANTINE),
        report,
    )
