"""The paper's Table 2: each preference signal (Bradley-Terry RM, pairwise preference model,
LLM-as-judge) against the gold judge, per section, with its length and position bias; and on a
RewardBench-style file a user supplies. An evaluation: it may read the gold judge."""

from __future__ import annotations

import random
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rlhf.core.config import LLMJudgeConfig, RMEvalConfig
from rlhf.core.datafiles import BadRow, read_local
from rlhf.core.stats import bootstrap_clustered_mean, pearson_r
from rlhf.evaluation.judges import pairwise_judge
from rlhf.online.scoring import RewardScorer, round_robin
from rlhf.world.judge import judge
from rlhf.world.writer import DEMONSTRATION_FAMILY, OFFLINE_FAMILIES, write


def rm_eval(
    cfg: RMEvalConfig,
    rm_dir: str | Path,
    prompts: pa.Table,
    pm_dir: str | Path | None = None,
    llm: LLMJudgeConfig | None = None,
    scorer: RewardScorer | None = None,
) -> dict[str, Any]:
    """RM accuracy vs gold on held-out written pairs, per section; the per-prompt Pearson
    correlation between response length and reward (paper Fig. 5), for the RM and the judge;
    and under `signals` every signal of cfg.signals on the same pairs (paper Table 2).
    `scorer`: the RM at `rm_dir` already loaded, else it is loaded here."""
    scorer = scorer or RewardScorer(rm_dir)
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
    judges = {name: pairwise_judge(name, rm_dir, pm_dir, llm, scorer) for name in cfg.signals}
    signals = {
        name: _signal(cfg, judge, heldout, samples[: k * cfg.round_robin_prompts], gold, k)
        for name, judge in judges.items()
    }
    bench = benchmark(cfg, judges) if cfg.benchmark else None
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
        "signals": signals,
        "confidence": cfg.confidence,
        **({"benchmark": bench} if bench is not None else {}),
    }


def onpolicy_members(scorer: RewardScorer, scored: dict[str, pa.Table], gold: pa.Table) -> dict:
    """An ensemble's members one by one, then the ensemble, on the loop's own samples: per
    iteration, how often each orders two of one prompt's n samples as the gold judge does (every
    pair gold does not tie; a tie of the score left out), with the run's length penalty: the
    report's on-policy accuracy (rlhf.analytics.views.ONPOLICY_SQL) per member. Only the first
    DPO seed's samples, to keep the cost at one scoring pass of an iteration. {} for one RM:
    the report's on-policy diagnostics already give its accuracy."""
    if len(scorer.models) < 2:
        return {}
    golds = {
        (r["iteration"], r["seed"], r["prompt_id"], r["sample_idx"]): r["gold"]
        for r in gold.select(["iteration", "seed", "prompt_id", "sample_idx", "gold"]).to_pylist()
    }
    out: dict[str, Any] = {}
    for it, t in scored.items():
        seed = min(t.column("seed").to_pylist())
        rows = [
            r
            for r in t.to_pylist()
            if r["seed"] == seed and (it, seed, r["prompt_id"], r["sample_idx"]) in golds
        ]
        members = scorer.score_members(
            [r["prompt"] for r in rows], [r["response"] for r in rows], desc=f"rm_eval {it}"
        )
        penalty = np.array([r["length_penalty"] * r["length"] for r in rows])
        proxy = np.vstack([members, scorer.combine(members)]) - penalty
        g = np.array([golds[(it, seed, r["prompt_id"], r["sample_idx"])] for r in rows])
        acc, n = group_accuracy(proxy, g, [r["prompt_id"] for r in rows])
        out[it] = {
            "seed": seed,
            "gold_pairs": n,
            "member_accuracy": [_round(x) for x in acc[:-1]],
            "accuracy": _round(acc[-1]),
        }
    return out


def group_accuracy(
    scores: np.ndarray, gold: np.ndarray, groups: list
) -> tuple[list[float | None], int]:
    """For each row of `scores` (scorers x responses): over every pair of responses of one group
    that gold does not tie, the share the scorer orders as gold does, its own ties left out
    (None if it ties them all); and the number of such pairs."""
    by_group: dict[Any, list[int]] = {}
    for i, key in enumerate(groups):
        by_group.setdefault(key, []).append(i)
    pairs = [
        (i, j) for ix in by_group.values() for i, j in combinations(ix, 2) if gold[i] != gold[j]
    ]
    a, b = np.array(pairs, dtype=int).reshape(-1, 2).T
    acc = []
    for s in scores:
        untied = s[a] != s[b]
        right = (s[a] > s[b]) == (gold[a] > gold[b])
        acc.append(float(right[untied].mean()) if untied.any() else None)
    return acc, len(pairs)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def _graded(p_a: np.ndarray, a_better: np.ndarray) -> np.ndarray:
    """1 where a judge's P(a > b) sides with the label, 0 where against, 0.5 at exactly 0.5
    (a tie, or a verdict that could not be read)."""
    right = np.where(a_better, p_a > 0.5, p_a < 0.5)
    return np.where(p_a == 0.5, 0.5, right.astype(float))


def _acc(cfg: RMEvalConfig, graded: np.ndarray, clusters: list[str]) -> dict[str, float]:
    return bootstrap_clustered_mean(
        graded, np.array(clusters), cfg.bootstrap, cfg.confidence, cfg.seed
    ).as_dict()


def _by_group(
    cfg: RMEvalConfig, graded: np.ndarray, clusters: list[str], groups: np.ndarray
) -> dict[str, dict[str, float]]:
    """`_acc` within each group (a section, a benchmark subset), groups in sorted order."""
    ids = np.array(clusters)
    return {
        str(g): _acc(cfg, graded[groups == g], list(ids[groups == g])) for g in sorted(set(groups))
    }


def _signal(cfg, judge, heldout: list[tuple], samples: list[tuple], gold, k: int) -> dict:
    """One row of Table 2: accuracy against gold with intervals (clustered by prompt), per
    section; the same in one order only (before averaging: what position bias costs); the
    position bias; and the per-prompt length-preference correlation of the judge's round-robin
    score over k samples, beside gold's on the same prompts."""
    c = judge.compare(
        [p[0]["messages"] for p in heldout], [p[1] for p in heldout], [p[2] for p in heldout],
        desc="table 2 pairs",
    )  # fmt: skip
    label = np.array([p[3] for p in heldout])
    both, one = _graded(c.p_a, label), _graded(c.p_a_first, label)
    ids = [p[0]["prompt_id"] for p in heldout]
    cats = np.array([p[0]["category"] for p in heldout])
    groups = [samples[i : i + k] for i in range(0, len(samples), k)]
    scores = round_robin(
        judge, [g[0][0]["messages"] for g in groups], [[s[1] for s in g] for g in groups],
        "table 2 length bias",
    )  # fmt: skip
    lengths = np.array([len(s[1]) for s in samples], dtype=float)
    out = {
        "accuracy": _acc(cfg, both, ids),
        "accuracy_by_section": _by_group(cfg, both, ids, cats),
        "accuracy_one_order": _acc(cfg, one, ids),
        "position_bias": round(c.position_bias, 4),
        "first_position_rate": round(c.first_rate, 4),
        "length_corr": _mean_corr(lengths, np.concatenate(scores), k),
        "length_corr_gold": _mean_corr(lengths, gold[: len(samples)], k),
        "length_prompts": len(groups),
    }
    counts = getattr(judge, "counts", None)
    if counts is None:
        return out
    # How many were asked and how many came from the cache is cost, not result: it depends on
    # the cache a run finds, so it is printed, not written (the output stays reproducible).
    print(f"{type(judge).__name__}: asked {counts['asked']}, cached {counts['cached']}")
    kept = {k: v for k, v in sorted(counts.items()) if k not in ("asked", "cached")}
    return {**out, "counts": kept}


BENCHMARK_FIELDS = ("prompt", "chosen", "rejected")


def benchmark(cfg: RMEvalConfig, judges: dict) -> dict[str, Any]:
    """Every signal's accuracy on a RewardBench-style file, per `subset` (rows without one:
    `all`); a row missing a field or holding a non-string is quarantined, counted by reason."""
    rows = read_local(cfg.benchmark)
    good, quarantined = [], Counter()
    for r in rows:
        reason = None
        if isinstance(r, BadRow):
            reason = "invalid_json"
        else:
            for f in BENCHMARK_FIELDS:
                if f not in r or r[f] is None:
                    reason = f"missing_field:{f}"
                elif not isinstance(r[f], str) or not r[f].strip():
                    reason = f"wrong_type:{f}" if not isinstance(r[f], str) else f"empty:{f}"
                if reason:
                    break
        if reason:
            quarantined[reason] += 1
        else:
            good.append(r)
    out: dict[str, Any] = {
        "file": cfg.benchmark,
        "rows": len(good),
        "quarantined": dict(quarantined),
    }
    if not good:
        return out
    prompts = [[{"role": "user", "content": r["prompt"]}] for r in good]
    subsets = np.array([str(r.get("subset") or "all") for r in good])
    ids = [str(i) for i in range(len(good))]
    for name, signal in judges.items():
        c = signal.compare(prompts, [r["chosen"] for r in good], [r["rejected"] for r in good])
        graded = _graded(c.p_a, np.ones(len(good), dtype=bool))
        out[name] = {
            "accuracy": _acc(cfg, graded, ids),
            "by_subset": _by_group(cfg, graded, ids, subsets),
        }
    return out


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
    return round(float(np.mean(cs)), 4) if cs else None
