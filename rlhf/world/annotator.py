"""The world's human-like annotator as the loop's ranker (`score.ranker: annotator`): the
paper's ideal online preference oracle (section 1.2), which the proxy reward model stands in for
because human feedback is expensive. Here it is cheap, so it is a control: the upper bound of
what the loop gains with a labeller as good as the annotators who wrote the mix's labels.

Each sample's score is its gold value plus Gumbel noise of scale T (`world.annotator_temperature`):
any two samples then compare as the world's annotators compare a pair, P(a over b) =
sigmoid((gold_a - gold_b) / T) (a difference of two Gumbels is logistic), so the noise is the
annotators' own, not the gold judge's certainty. The noise of a sample is seeded by its
iteration, replicate, prompt and index: the same scores for any shard, worker or row order.
The embedded world's prompts only: a real prompt has no gold value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from rlhf.world.judge import gold


def _uniform(*key: object) -> float:
    """A number in (0, 1) that depends only on `key`."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11 | 1) / 2.0**53


def annotator_rewards(gens: pa.Table, temperature: float, seed: int = 0) -> np.ndarray:
    """One score per generation row: gold + temperature x Gumbel noise (module docstring)."""
    cols = ("iteration", "seed", "prompt_id", "sample_idx", "prompt", "response")
    rows = gens.select(list(cols)).to_pylist()
    g = np.array([gold(r["prompt"][-1]["content"], r["response"]) for r in rows], dtype=np.float64)
    u = np.array(
        [_uniform(seed, r["iteration"], r["seed"], r["prompt_id"], r["sample_idx"]) for r in rows],
        dtype=np.float64,
    )
    return g - temperature * np.log(-np.log(u))


def ranker(params: Any) -> Callable[[pa.Table], np.ndarray] | None:
    """The loop's ranker under score.ranker=annotator (the stages pass it in), else None."""
    if params.score.ranker != "annotator":
        return None
    t, seed = params.world.annotator_temperature, params.world.seed
    return lambda gens: annotator_rewards(gens, t, seed)
