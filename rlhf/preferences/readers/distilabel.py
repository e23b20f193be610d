"""argilla's distilabel preference sets: math-preference-dpo, intel-orca-dpo-pairs and
capybara-dpo-7k-binarized (multi-turn)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    assistant_turn,
    check_fields,
    user_turn,
)
from rlhf.preferences.readers import common


def adapt_argilla_math(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := check_fields(
            row, i, {"instruction": "text", "chosen_response": "text", "rejected_response": "text"}
        ):
            yield d
            continue
        yield common.rated_pair(
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
        if len(ratings) != 2 or any(common.score(x) is None for x in ratings):
            yield Drop(
                i, "invalid_score", "rating", f"expected 2 numeric ratings, got {ratings!r}", row
            )
            continue
        hi, lo = max(ratings), min(ratings)
        cs = common.score(row.get("chosen_score"))
        c = hi if cs is None else cs
        # The other rating: the lower one, unless the chosen response holds the lower one.
        r = lo if c >= hi else hi
        yield common.rated_pair(
            i, row, prompt, row["chosen"], row["rejected"], c, r, ("chosen_score", "rating"), flt
        )


def adapt_capybara(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        msgs = common.read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        if row.get("rating_chosen") is None and row.get("rating_rejected") is None:
            yield Candidate(i, chosen, rejected)
            continue
        checked = common.check_ratings(
            i,
            row,
            row.get("rating_chosen"),
            row.get("rating_rejected"),
            ("rating_chosen", "rating_rejected"),
            flt,
        )
        yield checked if isinstance(checked, Drop) else Candidate(i, chosen, rejected, *checked)


FORMATS = (
    Format(
        "argilla-math",
        adapt_argilla_math,
        "ai_rating_1_10",
        "argilla/distilabel-math-preference-dpo",
        SourceFilter(min_margin=1.0),
        {"instruction": "text", "chosen_response": "text", "rejected_response": "text"},
    ),
    Format(
        "orca-dpo",
        adapt_orca_dpo,
        "ai_rating_1_10",
        "argilla/distilabel-intel-orca-dpo-pairs",
        SourceFilter(min_margin=1.0),
        {"input": "text", "chosen": "text", "rejected": "text", "system": "text"},
    ),
    Format(
        "capybara",
        adapt_capybara,
        "ai_rating_1_5",
        "argilla/distilabel-capybara-dpo-7k-binarized",
        SourceFilter(min_margin=1.0),
        {
            "chosen": "list",
            "rejected": "list",
            "rating_chosen": "number",
            "rating_rejected": "number",
        },
    ),
)
