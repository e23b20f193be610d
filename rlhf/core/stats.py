"""Statistics for the evaluation: two-level bootstrap confidence intervals over seeds and prompts,
and the AlpacaEval-style length-controlled win-rate.

Why two levels: the eval prompts are shared by every replicate, so a policy's score varies both
with the seed that trained it and with which prompts were asked. Resampling seeds, then prompts
(the same prompt draw for every seed in a resample) keeps both sources of noise in the interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    mean: float
    lo: float
    hi: float

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {k: round(float(v), digits) for k, v in vars(self).items()}


def _counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """How often each of n units is drawn, in each of b resamples of size n: shape (b, n)."""
    idx = rng.integers(0, n, size=(b, n))
    counts = np.zeros((b, n))
    np.add.at(counts, (np.arange(b)[:, None], idx), 1.0)
    return counts


def _percentile(point: float, stats: np.ndarray, confidence: float) -> Interval:
    """`point` with the central `confidence` percentile interval of its bootstrap `stats`."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return Interval(point, float(lo), float(hi))


def bootstrap_mean(
    values: np.ndarray, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Mean of a (seeds x prompts) matrix with a two-level percentile bootstrap interval.

    A 1-D array is one seed's per-prompt values. Each resample draws seeds with replacement and,
    independently, prompts with replacement; its statistic is the mean over the drawn cells.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.size == 0:
        raise ValueError(f"expected a non-empty (seeds x prompts) matrix, got shape {v.shape}")
    if np.isnan(v).any():
        raise ValueError("values contain NaN (a seed is missing some prompts)")
    rng = np.random.default_rng(seed)
    s, p = v.shape
    cs, cp = _counts(rng, s, n_boot), _counts(rng, p, n_boot)
    stats = np.einsum("bs,sp,bp->b", cs, v, cp) / (s * p)
    return _percentile(float(v.mean()), stats, confidence)


def length_controlled_win_rate(wins: np.ndarray, len_diff: np.ndarray) -> float:
    """AlpacaEval-LC style: fit P(win) = sigmoid(a + b * z) where z is the standardised length
    difference (policy - baseline), by Newton's method on the (fractional, ties = 1/2) logistic
    likelihood with a small ridge on b; report sigmoid(a), the win-rate at equal length."""
    y = np.asarray(wins, dtype=float).ravel()
    d = np.asarray(len_diff, dtype=float).ravel()
    sd = float(np.std(d)) or 1.0
    x = np.stack([np.ones_like(y), d / sd], axis=1)
    w = np.zeros(2)
    ridge = np.diag([0.0, 1e-3])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        grad = x.T @ (y - p) - ridge @ w
        hess = (x * (p * (1 - p))[:, None]).T @ x + ridge + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(1.0 / (1.0 + np.exp(-w[0])))


def bootstrap_lc_win_rate(
    wins: np.ndarray,
    len_diff: np.ndarray,
    n_boot: int = 500,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Length-controlled win-rate of (seeds x prompts x samples) arrays, with the same two-level
    bootstrap as :func:`bootstrap_mean` (refitting the logistic model in every resample)."""
    w = np.asarray(wins, dtype=float)
    d = np.asarray(len_diff, dtype=float)
    if w.shape != d.shape or w.ndim != 3:
        raise ValueError(
            f"wins and len_diff must share a (seeds, prompts, samples) shape: {w.shape}, {d.shape}"
        )
    rng = np.random.default_rng(seed)
    s, p, _ = w.shape
    stats = np.empty(n_boot)
    for b in range(n_boot):
        si, pi = rng.integers(0, s, s), rng.integers(0, p, p)
        stats[b] = length_controlled_win_rate(w[si][:, pi], d[si][:, pi])
    return _percentile(length_controlled_win_rate(w, d), stats, confidence)


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    sx, sy = x.std(), y.std()
    if sx == 0 or sy == 0:
        return float("nan")
    return float(((x - x.mean()) * (y - y.mean())).mean() / (sx * sy))


def bootstrap_clustered_mean(
    values: np.ndarray,
    clusters: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Mean of `values` with a percentile interval that resamples whole clusters (e.g. the
    pairs of one prompt, which share its difficulty) with replacement."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("no values to average")
    _, idx = np.unique(np.asarray(clusters), return_inverse=True)
    sums, sizes = np.bincount(idx, weights=v), np.bincount(idx).astype(float)
    counts = _counts(np.random.default_rng(seed), len(sums), n_boot)
    stats = (counts @ sums) / (counts @ sizes)
    return _percentile(float(v.mean()), stats, confidence)
