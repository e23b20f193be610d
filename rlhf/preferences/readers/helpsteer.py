"""nvidia/HelpSteer: one rated response per row, pairs from responses to the same prompt."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.core.messages import normalize
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    assistant_turn,
    check_fields,
    grouped,
    user_turn,
)

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


FORMATS = (
    Format(
        "helpsteer",
        adapt_helpsteer,
        "human_attributes_0_4",
        "nvidia/HelpSteer",
        SourceFilter(min_margin=1.0),
        {"prompt": "text", "response": "text", "helpfulness": "number", "correctness": "number"},
    ),
)
