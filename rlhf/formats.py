"""Public preference datasets in their published schemas -> the standard preference format.

Each format names the dataset it mirrors, an adapter (native rows -> candidate pairs or
quarantine records with a reason), the annotator kind and the paper's default filter. Every
candidate then passes the common structural checks of :func:`rlhf.mix.run_adapter`
(well-formed roles, shared prefix, non-identical answers), so no row is dropped uncounted.

Rows are loaded through `datasets` from a local jsonl / json / parquet file (optionally
gzipped) or, with ``RLHF_ALLOW_HUB=1``, from a hub id. Writers produce the standard table,
the RLHFlow message format and TRL's conversational and plain-text preference formats.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from rlhf.config import SourceFilter
from rlhf.mix import (
    AdaptResult,
    Candidate,
    Drop,
    Row,
    _assistant,
    _missing,
    _user,
    adapt_helpsteer,
    adapt_hh,
    adapt_pku_safe,
    adapt_shp,
    adapt_ultrafeedback,
    adapt_ultrainteract,
    run_adapter,
)

Adapter = Callable[[list[Row], SourceFilter, random.Random], Iterator[Candidate | Drop]]


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
    return Candidate(i, prompt + [_assistant(chosen)], prompt + [_assistant(rejected)], *checked)


# --- CodeUltraFeedback (coseus/CodeUltraFeedback) ---------------------------------------------


def adapt_codeultrafeedback(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """instruction + responses[{model, response}] rated by annotations[{model, rating,
    rationale}] (ratings are strings "1".."5"): best-rated vs a random completion rated at
    least `min_margin` lower, as for UltraFeedback."""
    for i, row in enumerate(rows):
        if d := _missing(row, i, ("instruction", "responses", "annotations")):
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
        prompt = [_user(row["instruction"])]
        yield Candidate(
            i, prompt + [_assistant(top[2])], prompt + [_assistant(low[2])], top[0], low[0]
        )


# --- argilla/distilabel-math-preference-dpo -------------------------------------------------


def adapt_argilla_math(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := _missing(row, i, ("instruction", "chosen_response", "rejected_response")):
            yield d
            continue
        yield _rated_pair(
            i,
            row,
            [_user(row["instruction"])],
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
        if d := _missing(row, i, ("input", "chosen", "rejected")):
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
        ) + [_user(row["input"])]
        ratings = row.get("rating")
        if not ratings:  # unrated rows keep their original label, without scores
            yield Candidate(
                i, prompt + [_assistant(row["chosen"])], prompt + [_assistant(row["rejected"])]
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


def _messages(v: Any) -> list[dict] | None:
    if not isinstance(v, list):
        return None
    return [{"role": m.get("role"), "content": m.get("content")} for m in v if isinstance(m, dict)]


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
    if d := _missing(row, i, ("chosen", "rejected")):
        return d
    return _pair_messages(
        i, row, row["chosen"], row["rejected"], "not a list of {role, content} messages"
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
        if d := _missing(row, i, ("chosen", "rejected")):
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
            p = [_user(prompt)]
            yield Candidate(i, p + [_assistant(chosen)], p + [_assistant(rejected)])
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


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("hh-rlhf", adapt_hh, "human_bt", "Anthropic/hh-rlhf", SourceFilter()),
        Format(
            "shp",
            adapt_shp,
            "reddit_votes",
            "stanfordnlp/SHP",
            SourceFilter(min_ratio=2.0, max_pairs_per_prompt=5),
        ),
        Format(
            "helpsteer",
            adapt_helpsteer,
            "human_attributes_0_4",
            "nvidia/HelpSteer",
            SourceFilter(min_margin=1.0),
        ),
        Format(
            "pku-saferlhf",
            adapt_pku_safe,
            "human_safety",
            "PKU-Alignment/PKU-SafeRLHF",
            SourceFilter(label="safer"),
        ),
        Format(
            "ultrafeedback",
            adapt_ultrafeedback,
            "ai_rating_1_10",
            "openbmb/UltraFeedback",
            SourceFilter(min_margin=1.0),
        ),
        Format(
            "ultrainteract",
            adapt_ultrainteract,
            "answer_correctness",
            "openbmb/UltraInteract_pair",
            SourceFilter(),
        ),
        Format(
            "codeultrafeedback",
            adapt_codeultrafeedback,
            "ai_rating_1_5",
            "coseus/CodeUltraFeedback",
            SourceFilter(min_margin=1.0),
        ),
        Format(
            "argilla-math",
            adapt_argilla_math,
            "ai_rating_1_10",
            "argilla/distilabel-math-preference-dpo",
            SourceFilter(min_margin=1.0),
        ),
        Format(
            "orca-dpo",
            adapt_orca_dpo,
            "ai_rating_1_10",
            "argilla/distilabel-intel-orca-dpo-pairs",
            SourceFilter(min_margin=1.0),
        ),
        Format(
            "capybara",
            adapt_capybara,
            "ai_rating_1_5",
            "argilla/distilabel-capybara-dpo-7k-binarized",
            SourceFilter(min_margin=1.0),
        ),
        Format("rlhflow", adapt_rlhflow, "unknown", "RLHFlow/*-standard", SourceFilter()),
        Format("trl", adapt_trl, "unknown", "trl-lib/* preference datasets", SourceFilter()),
    )
}


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


def load_rows(
    spec: str | Path, split: str = "train", revision: str = "", max_rows: int = 0
) -> list[Row]:
    """Rows of a local .jsonl / .json / .parquet file (optionally .gz), or of a hub dataset id
    when RLHF_ALLOW_HUB=1 (never downloaded otherwise); the first `max_rows` when > 0, so row
    numbers in quarantine records stay the file's own."""
    import datasets

    p = Path(spec)
    if p.exists():
        name = p.name[:-3] if p.name.endswith(".gz") else p.name
        if name.endswith(".parquet"):
            builder = "parquet"
        elif name.endswith((".jsonl", ".json")):
            builder = "json"
        else:
            raise ValueError(
                f"{p}: unsupported file type (use .jsonl, .json or .parquet, optionally .gz)"
            )
        ds = datasets.load_dataset(builder, data_files=str(p), split="train")
    elif os.environ.get("RLHF_ALLOW_HUB", "0") != "1":
        raise FileNotFoundError(
            f"{spec}: no such file; to read it as a hub dataset id set RLHF_ALLOW_HUB=1 "
            "(nothing is downloaded by default)"
        )
    else:
        ds = datasets.load_dataset(str(spec), split=split, revision=revision or None)
    if max_rows and len(ds) > max_rows:
        ds = ds.select(range(max_rows))
    return ds.to_list()


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
        return pa.Table.from_pylist(rows), 0
    if to == "trl":
        return pa.Table.from_pylist(
            [
                {
                    "prompt": r["chosen"][:-1],
                    "chosen": r["chosen"][-1:],
                    "rejected": r["rejected"][-1:],
                }
                for r in rows
            ]
        ), 0
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
