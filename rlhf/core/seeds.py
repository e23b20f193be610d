"""Derived seeds that are stable across processes (unlike hash(), which Python salts)."""

from __future__ import annotations

import random


def seeded(name: str, seed: int) -> int:
    """A 31-bit seed from (name, seed), stable across processes."""
    return random.Random(f"{seed}:{name}").getrandbits(31)
