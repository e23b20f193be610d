"""Pairwise human-judged sets (the PandaLM test set): response1 / response2 and annotator votes."""

from __future__ import annotations

import random
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    alpaca_context,
    assistant_turn,
    check_fields,
)

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


FORMATS = (
    Format(
        "pairwise-judged",
        adapt_pairwise_judged,
        "human_majority",
        "WeOpenML/PandaLM test set (response1/2, annotator1..3)",
        SourceFilter(),
        {"instruction": "text", "response1": "text", "response2": "text", "annotator1": "number"},
    ),
)
