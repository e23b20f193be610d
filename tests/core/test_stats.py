"""Bootstrap intervals and the length-controlled win-rate on data with known answers."""

import numpy as np
import pytest

from rlhf.core.stats import (
    bootstrap_lc_win_rate,
    bootstrap_mean,
    length_controlled_win_rate,
    pearson_r,
)


def test_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_mean, n, reps = 0.3, 150, 200
    covered = 0
    for i in range(reps):
        x = rng.normal(true_mean, 1.0, n)
        iv = bootstrap_mean(x, n_boot=400, seed=i)
        covered += iv.lo <= true_mean <= iv.hi
    # Binomial(200, 0.95) lies in [181, 197] with probability > 0.99.
    assert 181 <= covered <= 198, covered


def test_interval_width_matches_the_standard_error():
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 2.0, 400)
    iv = bootstrap_mean(x, n_boot=4000)
    se = x.std() / np.sqrt(len(x))
    assert iv.mean == pytest.approx(x.mean())
    assert iv.hi - iv.lo == pytest.approx(2 * 1.96 * se, rel=0.12)


def test_seed_to_seed_spread_widens_the_interval():
    rng = np.random.default_rng(3)
    prompts = rng.normal(0.5, 0.1, 300)
    same = np.stack([prompts + rng.normal(0, 0.01, 300) for _ in range(3)])
    # Each seed shifted by a whole-run offset: the prompt-only interval would miss this noise.
    shifted = same + np.array([[-0.1], [0.0], [0.1]])
    narrow, wide = bootstrap_mean(same), bootstrap_mean(shifted)
    assert (wide.hi - wide.lo) > 3 * (narrow.hi - narrow.lo)
    assert wide.lo < 0.45 and wide.hi > 0.55


def test_bootstrap_rejects_holes_and_empty_input():
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mean(np.array([[0.1, np.nan]]))
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean(np.zeros((0, 3)))


def test_lc_bootstrap_recovers_a_pure_length_effect():
    rng = np.random.default_rng(4)
    diff = rng.normal(8, 10, (2, 300, 2))  # the policy is 8 words longer on average
    wins = (rng.random(diff.shape) < 1 / (1 + np.exp(-diff / 5))).astype(float)
    assert wins.mean() > 0.7
    iv = bootstrap_lc_win_rate(wins, diff, n_boot=200)
    assert iv.lo <= 0.5 <= iv.hi or abs(iv.mean - 0.5) < 0.05
    assert iv.mean == pytest.approx(length_controlled_win_rate(wins, diff))


def test_pearson_r_known_values():
    x = np.arange(10.0)
    assert pearson_r(x, 3 * x + 1) == pytest.approx(1.0)
    assert pearson_r(x, -x) == pytest.approx(-1.0)
    assert np.isnan(pearson_r(x, np.ones(10)))
