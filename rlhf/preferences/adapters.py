"""The adapter framework: a dataset adapter turns native rows into candidate pairs or
quarantine records with a reason; :func:`run_adapter` applies the common structural checks
(:func:`rlhf.core.messages.pair_problem`) so that nothing is dropped without a quarantine row.
The adapters themselves live in :mod:`rlhf.preferences.readers`, one module per dataset
family, and their one registry in :mod:`rlhf.preferences.formats`.

Quarantine reasons:
  missing_field, empty_turn, bad_roles, malformed, prefix_mismatch, identical_pair,
  invalid_score, invalid_label, label_contradicts_scores, label_contradicts_flags,
  below_min_margin, below_min_ratio, over_pair_cap, tied_rating, no_majority, wrong_type,
  invalid_json, benchmark_contamination, unpaired
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rlhf.core.config import SourceFilter
from rlhf.core.datafiles import BadRow
from rlhf.core.messages import Message, pair_problem, prompt_id

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


def user_turn(text: str) -> Message:
    return {"role": "user", "content": text}


def assistant_turn(text: str) -> Message:
    return {"role": "assistant", "content": text}


KINDS: dict[str, Callable[[Any], bool]] = {
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


def check_fields(row: Row, i: int, spec: dict[str, str], optional: dict[str, str] | None = None):
    """A `missing_field` or `wrong_type` quarantine naming the dataset's own field, or None.
    `spec`: required field -> kind (a key of KINDS); `optional`: checked when not null."""
    if not isinstance(row, dict):
        return Drop(i, "malformed", "", f"row is {_type_name(row)}, not an object", row)
    for n in spec:
        if row.get(n) is None:
            return Drop(i, "missing_field", n, f"{n} is missing or null", row)
    for n, kind in {**spec, **(optional or {})}.items():
        v = row.get(n)
        if v is not None and not KINDS[kind](v):
            return Drop(i, "wrong_type", n, f"{n} is {_type_name(v)}, expected {kind}", row)
    return None


def check_missing(row: Row, i: int, names: tuple[str, ...]) -> Drop | None:
    return check_fields(row, i, dict.fromkeys(names, "any"))


Adapter = Callable[[list[Row], SourceFilter, random.Random], Iterator[Candidate | Drop]]

GROUPED: set[Adapter] = set()
"""Adapters that pair rows with each other; every other adapter reads one row at a time."""


def grouped(fn: Adapter) -> Adapter:
    """Mark an adapter that pairs rows with each other (it sees all rows at once)."""
    GROUPED.add(fn)
    return fn


def _raw_json(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, default=str, ensure_ascii=False)


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
