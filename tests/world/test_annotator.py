"""The world's annotator as the loop's ranker (score.ranker=annotator): samples compare as the
world's annotators compare a pair, with noise seeded per sample, never by row order."""

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from rlhf.core.config import ScoreConfig
from rlhf.world.annotator import annotator_rewards
from rlhf.world.judge import gold
from rlhf.world.prompts import sample_prompt

from ..conftest import scored_rows


def _two_answers():
    """A world prompt and two answers whose gold values differ by a little."""
    rng = random.Random(3)
    for _ in range(200):
        _, prompt = sample_prompt(rng, category="chat")
        a, b = "It is a fine question. " + prompt, "No."
        if 0.02 < gold(prompt, a) - gold(prompt, b) < 0.2:
            return prompt, a, b
    raise AssertionError("no prompt with a small gold gap")


def test_two_samples_compare_as_the_worlds_annotators_compare_a_pair():
    prompt, a, b = _two_answers()
    t = 0.08
    groups = {f"p{i}": [(a, 0.0), (b, 0.0)] for i in range(4000)}
    table = pa.Table.from_pylist(
        scored_rows("iter_1", groups, [{"role": "user", "content": prompt}])
    )
    r = annotator_rewards(table, t).reshape(-1, 2)
    expected = 1 / (1 + math.exp(-(gold(prompt, a) - gold(prompt, b)) / t))
    assert 0.55 < expected < 0.95  # a comparison the noise decides now and then
    assert abs((r[:, 0] > r[:, 1]).mean() - expected) < 0.03
    # Seeded per sample: the same scores in any row order, other scores under another seed.
    flipped = annotator_rewards(table.take(np.arange(table.num_rows)[::-1]), t)
    assert np.array_equal(flipped[::-1], r.ravel())
    assert not np.array_equal(annotator_rewards(table, t, seed=1), r.ravel())


def test_the_loop_ranks_with_the_annotator_it_is_given_and_never_without_one():
    from rlhf.online.scoring import score

    groups = {"p0": [("a", 0.0), ("b", 0.0)]}
    rows = scored_rows("iter_1", groups, [{"role": "user", "content": "hi"}])
    keep = ("iteration", "seed", "prompt_id", "sample_idx", "prompt", "response")
    gens = pa.Table.from_pylist([{k: r[k] for k in keep} for r in rows])
    cfg = ScoreConfig(ranker="annotator")
    out = score(cfg, "unused", gens, annotator=lambda g: np.array([2.0, -1.0]))
    assert out.column("reward").to_pylist() == [2.0, -1.0]
    with pytest.raises(ValueError, match="annotator"):
        score(cfg, "unused", gens)
