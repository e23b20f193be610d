"""Message-list preference formats: RLHFlow's standard format and TRL's preference datasets."""

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
    check_missing,
    user_turn,
)
from rlhf.preferences.readers import common


def adapt_rlhflow(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """chosen / rejected as full message lists sharing all turns but the last, optional
    chosen_score / rejected_score (checked against the label when present)."""
    for i, row in enumerate(rows):
        msgs = common.read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        cs, rs = common.score(row.get("chosen_score")), common.score(row.get("rejected_score"))
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
        msgs = common.pair_messages(
            i, row, chosen, rejected, "expected both strings or both message lists"
        )
        if isinstance(msgs, Drop):
            yield msgs
            continue
        c, r = msgs
        if prompt is not None:
            p = common.messages(prompt)
            if p is None:
                yield Drop(i, "malformed", "prompt", "prompt is not a message list", row)
                continue
            c, r = p + c, p + r
        yield Candidate(i, c, r)


def has_no_scores(row: Row) -> bool:
    return "score_chosen" not in row and "rating_chosen" not in row


FORMATS = (
    Format(
        "rlhflow",
        adapt_rlhflow,
        "unknown",
        "RLHFlow/*-standard",
        SourceFilter(),
        {"chosen": "list", "rejected": "list"},
        has_no_scores,
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
