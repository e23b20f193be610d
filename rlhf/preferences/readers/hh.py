"""Anthropic/hh-rlhf: transcripts `\\n\\nHuman: ...\\n\\nAssistant: ...` as messages."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.core.messages import Message
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    check_fields,
)

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


def looks_like_transcript(row: Row) -> bool:
    return "\n\nHuman:" in str(row.get("chosen"))


FORMATS = (
    Format(
        "hh-rlhf",
        adapt_hh,
        "human_bt",
        "Anthropic/hh-rlhf",
        SourceFilter(),
        {"chosen": "text", "rejected": "text"},
        looks_like_transcript,
    ),
)
