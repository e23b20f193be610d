"""LLaMA-Factory preference data (`ranking: true`): ShareGPT and Alpaca styles."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

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
from rlhf.preferences.readers import common


def _one_answer(v: Any) -> list[dict] | None:
    """A ShareGPT `chosen` / `rejected`: one {from, value} object, or a list of messages."""
    return common.messages([v]) if isinstance(v, dict) else common.messages(v)


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
        context = common.messages(row[key])
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


FORMATS = (
    Format(
        "sharegpt",
        adapt_sharegpt,
        "unknown",
        "hiyouga/LLaMA-Factory sharegpt preference data (`ranking: true`)",
        SourceFilter(),
        {"conversations": "list", "chosen": "object or list", "rejected": "object or list"},
    ),
    Format(
        "alpaca",
        adapt_alpaca,
        "unknown",
        "hiyouga/LLaMA-Factory alpaca preference data (`ranking: true`)",
        SourceFilter(),
        {"instruction": "text", "chosen": "text", "rejected": "text"},
    ),
)
