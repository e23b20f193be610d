"""Prompt generator over RewardBench-like sections, and the parser that recovers a prompt's task.

The judge never receives hidden metadata: it re-reads the prompt text with :func:`parse`,
so it can score any (prompt, response) the pipeline produces.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rlhf.world import kb

CATEGORIES = ("chat", "chat-hard", "safety", "reasoning")
CATEGORY_WEIGHTS = (0.25, 0.30, 0.15, 0.30)


@dataclass(frozen=True)
class Task:
    """What a prompt asks, as the judge understands it."""

    category: str
    kind: str  # describe | brief | color | place | name | harmful | benign | arith
    entity: str = ""
    color: str = ""
    thing: str = ""  # an entity kind, for "name a red fruit."
    answer: int | None = None
    request: str = ""  # the safety request "verb target"
    # Ideal response length in words (inclusive); the judge's length term peaks inside it.
    lo: int = 4
    hi: int = 20


def _describe(e: str, rng: random.Random) -> str:
    return rng.choice(
        [f"tell me about the {e}.", f"what do you know about the {e}?", f"describe the {e}."]
    )


def sample_prompt(rng: random.Random, category: str | None = None) -> tuple[str, str]:
    """Draw one prompt; returns (category, text)."""
    if category is None:
        category = rng.choices(CATEGORIES, weights=CATEGORY_WEIGHTS)[0]
    prefix = rng.choice(kb.PREFIXES)
    if category == "chat":
        e = rng.choice(kb.ENTITIES)
        body = _describe(e.name, rng)
    elif category == "chat-hard":
        sub = rng.choice(["brief", "color", "place", "name"])
        e = rng.choice(kb.ENTITIES)
        if sub == "brief":
            body = f"describe the {e.name} in a few words."
        elif sub == "color":
            body = f"what color is the {e.name}?"
        elif sub == "place":
            body = kb.PLACE_QUESTION[e.kind].format(e=e.name)
        else:
            color, thing = rng.choice(kb.NAMEABLE)
            body = f"name a {color} {thing}."
    elif category == "safety":
        if rng.random() < 0.5:
            verb, target = rng.choice(kb.HARMFUL)
        else:
            verb, target, _ = rng.choice(kb.BENIGN)
        body = rng.choice(kb.SAFETY_TEMPLATES).format(r=f"{verb} {target}")
    elif category == "reasoning":
        sub = rng.choice(["plus", "minus", "times", "apples"])
        if sub == "plus":
            a, b = rng.randint(1, 40), rng.randint(1, 40)
            body = f"what is {a} plus {b}?"
        elif sub == "minus":
            a = rng.randint(2, 50)
            b = rng.randint(1, a)
            body = f"what is {a} minus {b}?"
        elif sub == "times":
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            body = f"what is {a} times {b}?"
        else:
            a = rng.randint(3, 30)
            b = rng.randint(1, a)
            body = f"if i have {a} apples and eat {b}, how many are left?"
    else:
        raise ValueError(f"unknown category {category!r}")
    return category, prefix + body


_PREFIX_RE = "(?:" + "|".join(re.escape(p) for p in kb.PREFIXES if p) + ")?"
_NAMES = "|".join(sorted((e.name for e in kb.ENTITIES), key=len, reverse=True))
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"^{_PREFIX_RE}describe the (?P<e>{_NAMES}) in a few words\.$"), "brief"),
    (
        re.compile(
            rf"^{_PREFIX_RE}(?:tell me about the|what do you know about the|describe the) (?P<e>{_NAMES})[.?]$"
        ),
        "describe",
    ),
    (re.compile(rf"^{_PREFIX_RE}what color is the (?P<e>{_NAMES})\?$"), "color"),
    (
        re.compile(
            rf"^{_PREFIX_RE}where (?:does|is) the (?P<e>{_NAMES}) (?:live|grow|used|travel)\?$"
        ),
        "place",
    ),
    (re.compile(rf"^{_PREFIX_RE}name a (?P<c>\w+) (?P<t>\w+)\.$"), "name"),
    (
        re.compile(
            rf"^{_PREFIX_RE}(?:how do i|can you help me|what is the best way to|tell me how to) (?P<r>.+?)[?.]$"
        ),
        "safety",
    ),
    (
        re.compile(rf"^{_PREFIX_RE}what is (?P<a>\d+) (?P<op>plus|minus|times) (?P<b>\d+)\?$"),
        "arith",
    ),
    (
        re.compile(
            rf"^{_PREFIX_RE}if i have (?P<a>\d+) apples and eat (?P<b>\d+), how many are left\?$"
        ),
        "apples",
    ),
]
_HARMFUL = {f"{v} {t}" for v, t in kb.HARMFUL}
_BENIGN = {f"{v} {t}" for v, t, _ in kb.BENIGN}


def parse(text: str) -> Task:
    """Recover the task of a world prompt. Raises ValueError for text the world did not make."""
    text = text.strip()
    for pat, kind in _PATTERNS:
        m = pat.match(text)
        if not m:
            continue
        if kind in ("describe", "brief", "color", "place"):
            e = m["e"]
            if kind == "describe":
                return Task("chat", "describe", entity=e, lo=10, hi=28)
            if kind == "brief":
                return Task("chat-hard", "brief", entity=e, lo=2, hi=8)
            return Task("chat-hard", kind, entity=e, lo=3, hi=14)
        if kind == "name":
            if (m["c"], m["t"]) not in kb.NAMEABLE:
                raise ValueError(f"not a world prompt: {text!r}")
            return Task("chat-hard", "name", color=m["c"], thing=m["t"], lo=3, hi=14)
        if kind == "safety":
            r = m["r"]
            if r in _HARMFUL:
                return Task("safety", "harmful", request=r, lo=4, hi=18)
            if r in _BENIGN:
                return Task("safety", "benign", request=r, lo=6, hi=22)
            raise ValueError(f"not a world prompt: {text!r}")
        a, b = int(m["a"]), int(m["b"])
        if kind == "apples":
            return Task("reasoning", "arith", answer=a - b, lo=4, hi=18)
        ans = {"plus": a + b, "minus": a - b, "times": a * b}[m["op"]]
        return Task("reasoning", "arith", answer=ans, lo=4, hi=18)
    raise ValueError(f"not a world prompt: {text!r}")
