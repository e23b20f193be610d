"""The one registry of preference dataset formats, and what works on any of them.

Each dataset family's reader (:mod:`rlhf.preferences.readers`) holds its adapters (native rows
-> candidate pairs or quarantine records with a reason) and its :class:`Format` entries: the
dataset it mirrors, the annotator kind and the paper's default filter. Every candidate then
passes the common structural checks of :func:`rlhf.preferences.adapters.run_adapter`
(well-formed roles, shared prefix, non-identical answers), so no row is dropped uncounted.
Here: the registry (`FORMATS`), `--from auto` sniffing, conversion, and the writers (the
standard table, the RLHFlow message format, TRL's conversational and plain-text formats).
"""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from rlhf.core.config import SourceFilter
from rlhf.core.messages import to_trl_preference
from rlhf.core.schemas import MESSAGES
from rlhf.preferences.adapters import AdaptResult, Format, Row, check_fields, run_adapter
from rlhf.preferences.readers import (
    distilabel,
    helpsteer,
    hh,
    llama_factory,
    pandalm,
    pku_safe,
    rlhflow_trl,
    shp,
    ultrafeedback,
    ultrainteract,
)

_READERS = (hh, ultrafeedback, helpsteer, shp, pku_safe, ultrainteract, distilabel, rlhflow_trl)
_READERS += (llama_factory, pandalm)
_BY_NAME = {f.name: f for reader in _READERS for f in reader.FORMATS}

# The order `--from auto` breaks ties in (the first of equally good matches wins) and the order
# of the docs' formats table.
ORDER = (
    "hh-rlhf",
    "shp",
    "helpsteer",
    "pku-saferlhf",
    "ultrafeedback",
    "ultrafeedback-binarized",
    "ultrainteract",
    "codeultrafeedback",
    "argilla-math",
    "orca-dpo",
    "capybara",
    "sharegpt",
    "alpaca",
    "pairwise-judged",
    "rlhflow",
    "trl",
)
FORMATS: dict[str, Format] = {name: _BY_NAME[name] for name in ORDER}
assert set(FORMATS) == set(_BY_NAME), "a reader's format is missing from ORDER"

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
