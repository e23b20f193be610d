"""Helpers several readers share: ratings checked against a label, message lists in OpenAI or
ShareGPT style, a chosen / rejected pair of message lists."""

from __future__ import annotations

from typing import Any

from rlhf.core.config import SourceFilter
from rlhf.core.messages import content_text
from rlhf.preferences.adapters import Candidate, Drop, Row, assistant_turn, check_missing


def score(v: Any) -> float | None:
    """A rating as a float (CodeUltraFeedback stores ratings as strings); None if not a number."""
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def check_ratings(
    i: int, row: Row, cs: Any, rs: Any, fields: tuple[str, str], flt: SourceFilter
) -> Drop | tuple[float, float]:
    """(chosen, rejected) ratings if they are numbers that agree with the label and clear the
    margin, else the reason to quarantine the row."""
    c, r = score(cs), score(rs)
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


def rated_pair(
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
    checked = check_ratings(i, row, cs, rs, fields, flt)
    if isinstance(checked, Drop):
        return checked
    return Candidate(
        i, prompt + [assistant_turn(chosen)], prompt + [assistant_turn(rejected)], *checked
    )


ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "system": "system",
}


def message(m: Any) -> dict | None:
    """One message as {role, content}: OpenAI style (`role`, `content`, which may be a list of
    typed parts) or ShareGPT style (`from`, `value`); None if it is neither."""
    if not isinstance(m, dict):
        return None
    role = m.get("role", m.get("from"))
    content = content_text(m["content"] if "content" in m else m.get("value"))
    if not isinstance(role, str) or content is None:
        return None
    return {"role": ROLES.get(role, role), "content": content}


def messages(v: Any) -> list[dict] | None:
    """A message list, or None if `v` is not a list or any item is not a text message (a
    defect is never skipped silently)."""
    if not isinstance(v, list):
        return None
    msgs = [message(m) for m in v]
    return None if any(m is None for m in msgs) else msgs


def pair_messages(
    i: int, row: Row, chosen: Any, rejected: Any, detail: str
) -> Drop | tuple[list[dict], list[dict]]:
    """Both sides as message lists, or a `malformed` quarantine naming the side that is not."""
    c, r = messages(chosen), messages(rejected)
    if c is None or r is None:
        return Drop(i, "malformed", "chosen" if c is None else "rejected", detail, row)
    return c, r


def read_pair(i: int, row: Row) -> Drop | tuple[list[dict], list[dict]]:
    """`chosen` / `rejected` present and both message lists, else the row's quarantine."""
    if d := check_missing(row, i, ("chosen", "rejected")):
        return d
    return pair_messages(
        i, row, row["chosen"], row["rejected"], "not a list of text messages ({role, content})"
    )
