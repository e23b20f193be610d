"""Chat messages: stable ids, structural checks, and conversions to TRL's formats."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]


def prompt_id(messages: Sequence[Message]) -> str:
    """Stable id of a prompt (a message list): 16 hex chars of SHA-1 over canonical JSON."""
    canon = json.dumps(
        [{"role": m["role"], "content": normalize(m["content"])} for m in messages],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha1(canon.encode()).hexdigest()[:16]


def normalize(text: str) -> str:
    """Whitespace-collapsed text, the form used for ids and dedupe."""
    return " ".join(text.split())


def content_text(content: Any) -> str | None:
    """A message's text: a string as is, or a list of typed parts (OpenAI's chat format,
    LLaMA-Factory's `*_messages` files: ``[{"type": "text", "text"|"value": ...}]``) with its
    text parts joined by newlines. None when a part is not text (an image) or the shape is
    unknown, so the row is quarantined rather than silently shortened."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type", "text") != "text":
            return None
        t = part.get("text", part.get("value"))
        if not isinstance(t, str):
            return None
        texts.append(t)
    return "\n".join(texts)


def conversation_problem(messages: Sequence[Message] | None) -> tuple[str, str] | None:
    """(reason, detail) if `messages` is not a well-formed conversation ending in an answer."""
    if not messages:
        return "missing_field", "empty message list"
    for i, m in enumerate(messages):
        if m.get("role") is None or m.get("content") is None:
            return "missing_field", f"message {i} lacks role or content"
        if not isinstance(m["role"], str) or not isinstance(m["content"], str):
            return "wrong_type", f"message {i}: role and content must be text"
        if not m["content"].strip():
            return "empty_turn", f"message {i} ({m['role']}) is empty"
    roles = [m["role"] for m in messages]
    start = 1 if roles[0] == "system" else 0
    expected = ["user", "assistant"] * len(roles)
    if roles[start:] != expected[: len(roles) - start] or roles[-1] != "assistant":
        return "bad_roles", f"roles {roles} must alternate user/assistant and end with assistant"
    return None


def pair_problem(
    chosen: Sequence[Message], rejected: Sequence[Message]
) -> tuple[str, str, str] | None:
    """(reason, field, detail) if a chosen/rejected pair breaks the standard format."""
    for name, conv in (("chosen", chosen), ("rejected", rejected)):
        p = conversation_problem(conv)
        if p:
            return p[0], name, p[1]
    if list(chosen[:-1]) != list(rejected[:-1]):
        return (
            "prefix_mismatch",
            "rejected",
            "chosen and rejected do not share all turns but the last",
        )
    if normalize(chosen[-1]["content"]) == normalize(rejected[-1]["content"]):
        return "identical_pair", "rejected", "chosen and rejected answers are identical"
    return None


def to_trl_preference(example: dict[str, Any]) -> dict[str, Any]:
    """A standard-format row -> TRL's conversational preference example (prompt/chosen/rejected).

    Usable directly as ``datasets.Dataset.map(to_trl_preference)``.
    """
    return {
        "prompt": list(example["chosen"][:-1]),
        "chosen": [example["chosen"][-1]],
        "rejected": [example["rejected"][-1]],
    }
