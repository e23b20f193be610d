"""Gold-judge evaluation of policies and of the reward model. The embedded world's judge is
imported here and nowhere in training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rlhf.config import EvaluateConfig
from rlhf.generation import Sampling, make_backend
from rlhf.schemas import EVALUATIONS
from rlhf.seeds import seeded
from rlhf.world.judge import judge


def evaluate_policy(
    cfg: EvaluateConfig, name: str, policy_dir: str | Path, prompts: pa.Table
) -> pa.Table:
    backend = make_backend("hf", policy_dir, 64)
    s = Sampling(
        cfg.samples_per_prompt,
        cfg.temperature,
        1.0,
        0,
        cfg.max_new_tokens,
        seeded("eval", cfg.seed),
    )
    rows = prompts.to_pylist()
    outs = backend.generate([r["messages"] for r in rows], s, desc=f"evaluate {name}")
    table = []
    for r, group in zip(rows, outs, strict=True):
        text = r["messages"][-1]["content"]
        for k, c in enumerate(group):
            v = judge(text, c.text)
            table.append(
                {
                    "policy": name,
                    "prompt_id": r["prompt_id"],
                    "sample_idx": k,
                    "category": r["category"],
                    "prompt": text,
                    "response": c.text,
                    "n_words": v.n_words,
                    "gold": v.gold,
                    "correctness": v.correctness,
                }
            )
    return pa.Table.from_pylist(table, schema=EVALUATIONS)


def length_controlled_win_rate(wins: np.ndarray, len_diff: np.ndarray) -> float:
    """AlpacaEval-LC style: fit P(win) = sigmoid(a + b * z) where z is the standardised length
    difference (policy - baseline), by Newton's method on the (fractional, ties = 1/2) logistic
    likelihood with a small ridge on b; report sigmoid(a), the win-rate at equal length."""
    y = np.asarray(wins, dtype=float)
    sd = float(np.std(len_diff)) or 1.0
    x = np.stack([np.ones_like(y), np.asarray(len_diff, float) / sd], axis=1)
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


def policy_metrics(ev: pa.Table, baseline: pa.Table) -> dict[str, Any]:
    """Gold metrics of `ev`, and its win-rates against `baseline` on the same prompts/samples."""
    a = {(r["prompt_id"], r["sample_idx"]): r for r in ev.to_pylist()}
    b = {(r["prompt_id"], r["sample_idx"]): r for r in baseline.to_pylist()}
    keys = sorted(a.keys() & b.keys())
    if not keys:
        raise ValueError("evaluation and baseline share no (prompt, sample) to compare")
    wins = np.array(
        [
            1.0 if a[k]["gold"] > b[k]["gold"] else 0.5 if a[k]["gold"] == b[k]["gold"] else 0.0
            for k in keys
        ]
    )
    diff = np.array([a[k]["n_words"] - b[k]["n_words"] for k in keys], dtype=float)
    rows = list(a.values())
    cats = sorted({r["category"] for r in rows})
    return {
        "gold_mean": round(float(np.mean([r["gold"] for r in rows])), 4),
        "win_rate_vs_sft": round(float(wins.mean()), 4),
        "lc_win_rate_vs_sft": round(length_controlled_win_rate(wins, diff), 4),
        "mean_length_words": round(float(np.mean([r["n_words"] for r in rows])), 2),
        "correctness": {
            c: round(float(np.mean([r["correctness"] for r in rows if r["category"] == c])), 4)
            for c in cats
        },
        "gold_by_category": {
            c: round(float(np.mean([r["gold"] for r in rows if r["category"] == c])), 4)
            for c in cats
        },
        "n": len(rows),
    }
