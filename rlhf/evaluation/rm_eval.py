"""Reward-model evaluation against the gold judge (an evaluation: it may read the judge)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rlhf.core.config import RMEvalConfig
from rlhf.core.stats import pearson_r
from rlhf.online.scoring import RewardScorer
from rlhf.world.judge import judge
from rlhf.world.writer import DEMONSTRATION_FAMILY, OFFLINE_FAMILIES, write


def rm_eval(cfg: RMEvalConfig, rm_dir: str | Path, prompts: pa.Table) -> dict[str, Any]:
    """RM accuracy vs gold on held-out written pairs, per section; and the per-prompt Pearson
    correlation between response length and reward (paper Fig. 5), for the RM and the judge."""
    scorer = RewardScorer(rm_dir)
    rng = random.Random(f"{cfg.seed}:rm_eval")
    rows = prompts.to_pylist()
    # Held-out pairs written like the RM's training data (the offline sources' families), and
    # the same number written by the SFT demonstrator's family: the style the policy samples in.
    heldout = _pairs(rows, rng, cfg.pairs_per_prompt, OFFLINE_FAMILIES)
    own_style = _pairs(rows, rng, cfg.pairs_per_prompt, (DEMONSTRATION_FAMILY,))
    per_member = _correct_members(scorer, heldout)
    correct = per_member[-1]
    cats = sorted({p[0]["category"] for p in heldout})
    acc = {
        c: round(
            float(
                np.mean(
                    [ok for ok, p in zip(correct, heldout, strict=True) if p[0]["category"] == c]
                )
            ),
            4,
        )
        for c in cats
    }
    n = len(heldout)

    samples = []
    for r in rows:
        text = r["messages"][-1]["content"]
        for _ in range(cfg.samples_per_prompt):
            fam = rng.choice(OFFLINE_FAMILIES)
            samples.append((r, write(text, rng, rng.random(), rng.uniform(0.0, 4.0), fam)))
    rm = scorer.score(
        [s[0]["messages"] for s in samples], [s[1] for s in samples], desc="rm_eval length"
    )
    gold = np.array([judge(s[0]["messages"][-1]["content"], s[1]).gold for s in samples])
    lengths = np.array([len(s[1]) for s in samples], dtype=float)
    k = cfg.samples_per_prompt
    return {
        "accuracy": round(float(correct.mean()), 4),
        "accuracy_by_section": acc,
        "heldout_pairs": n,
        "accuracy_demonstrator_style": round(
            float(_correct_members(scorer, own_style)[-1].mean()), 4
        ),
        # An ensemble's members one by one (absent for a single RM): what the ensemble adds.
        **(
            {"member_accuracy": [round(float(c.mean()), 4) for c in per_member[:-1]]}
            if len(per_member) > 2
            else {}
        ),
        "length_reward_corr_rm": _mean_corr(lengths, rm, k),
        "length_reward_corr_gold": _mean_corr(lengths, gold, k),
    }


def _pairs(rows, rng: random.Random, per_prompt: int, families: tuple[str, ...]) -> list[tuple]:
    """(prompt row, x, y, x is better) for pairs the gold judge does not tie."""
    out = []
    for r in rows:
        text = r["messages"][-1]["content"]
        for _ in range(per_prompt):
            x, y = (
                write(text, rng, rng.random(), rng.uniform(0.0, 3.0), rng.choice(families))
                for _ in range(2)
            )
            gx, gy = judge(text, x).gold, judge(text, y).gold
            if gx != gy:
                out.append((r, x, y, gx > gy))
    return out


def _correct_members(scorer: RewardScorer, pairs: list[tuple]) -> np.ndarray:
    """Whether each member (rows), then the RM as a whole (last row), orders each pair as the
    gold judge does."""
    n = len(pairs)
    rewards = scorer.score_members(
        [p[0]["messages"] for p in pairs] * 2,
        [p[1] for p in pairs] + [p[2] for p in pairs],
        desc="rm_eval pairs",
    )
    rewards = np.vstack([rewards, scorer.combine(rewards)])
    return (rewards[:, :n] > rewards[:, n:]) == np.array([p[3] for p in pairs])


def _mean_corr(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean over prompts of the Pearson correlation within each prompt's k samples."""
    rs = [pearson_r(x[i : i + k], y[i : i + k]) for i in range(0, len(x), k)]
    cs = [r for r in rs if r == r]  # a prompt with constant length or reward has no r (NaN)
    return round(float(np.mean(cs)), 4) if cs else float("nan")
