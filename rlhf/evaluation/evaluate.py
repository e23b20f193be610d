"""Gold-judge evaluation of policies and of the reward model. The embedded world's judge is
imported here and nowhere in training."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from rlhf.core import paths
from rlhf.core.config import EvaluateConfig
from rlhf.core.schemas import EVALUATIONS, failed_sample
from rlhf.core.seeds import seeded
from rlhf.core.stats import bootstrap_lc_win_rate, bootstrap_mean
from rlhf.evaluation.judges import pairwise_judge
from rlhf.online.engine import EngineFailed
from rlhf.online.generation import Completion, Sampling, kl_to_reference, sample
from rlhf.online.scoring import RewardScorer
from rlhf.world.judge import judge, words

# Eval prompts per generate call, and per shard (a crash loses at most one shard's samples).
EVAL_BATCH = 64
EVAL_SHARD = 4 * EVAL_BATCH
PAIRWISE = ("preference_model", "llm")


def _no_failed(outs: list[list[Completion]], name: str) -> None:
    """Every judged sample must exist: a response the engine failed to give (which the generate
    stage keeps and pairs never use) would be judged here as an empty answer."""
    failed = sorted({c.finish_reason for g in outs for c in g if failed_sample(c.finish_reason)})
    if failed:
        raise EngineFailed(f"evaluate {name}: samples failed at the engine ({', '.join(failed)})")


def _follow_ups(cfg, policy_dir, rows, outs, s: Sampling, name, workdir) -> list[list[list]]:
    """Answer each row's scripted follow-up turns (MT-Bench's second question), one sample per
    conversation, each later turn seeing the policy's own earlier answers. Returns, per row and
    sample, the answers to every turn in order."""
    convs = [
        [[*r["messages"], {"role": "assistant", "content": c.text}] for c in group]
        for r, group in zip(rows, outs, strict=True)
    ]
    answers = [[[c.text] for c in group] for group in outs]
    turns = max((len(r.get("follow_ups") or []) for r in rows), default=0)
    for t in range(turns):
        todo = [
            (i, k)
            for i, r in enumerate(rows)
            if len(r.get("follow_ups") or []) > t
            for k in range(len(outs[i]))
        ]
        msgs = [
            convs[i][k] + [{"role": "user", "content": rows[i]["follow_ups"][t]}] for i, k in todo
        ]
        # Its own sampling seed per turn: turn 2 never replays turn 1's random numbers.
        one = Sampling(1, s.temperature, 1.0, 0, s.max_new_tokens, seeded(f"turn_{t + 2}", s.seed))
        got = sample(
            cfg.backend, policy_dir, msgs, one, EVAL_BATCH, EVAL_SHARD, f"{name}-turn_{t + 2}",
            workdir, desc=f"evaluate {name} turn {t + 2}", server=cfg.server,
        )  # fmt: skip
        _no_failed(got, name)
        for (i, k), m, g in zip(todo, msgs, got, strict=True):
            convs[i][k] = m + [{"role": "assistant", "content": g[0].text}]
            answers[i][k].append(g[0].text)
    return answers


def evaluate_policy(
    cfg: EvaluateConfig,
    name: str,
    policy_dir: str | Path,
    prompts: pa.Table,
    seed: int,
    rm_dir: str | Path | None = None,
    ref_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    pm_dir: str | Path | None = None,
    baseline: pa.Table | None = None,
    models: EvalModels | None = None,
) -> pa.Table:
    """Responses of replicate `seed` of a policy to the eval prompts, judged by the gold judge
    or, under evaluate.judge=reward_model, scored by the reward model at `rm_dir` (a proxy);
    under a pairwise judge (preference_model at `pm_dir`, or llm) each response is compared
    with the `baseline` evaluation's response to the same prompt and sample (none: the
    baseline itself, 0.5 by construction). Scripted follow-up turns are answered in turn.

    With `rm_dir`, every response also carries the reward model's score (`proxy`); with
    `ref_dir` (the SFT model), its KL to SFT (`kl_to_sft`, nats): the Gao et al. view of
    gold and proxy reward against the distance travelled from SFT.

    Every policy of a replicate is sampled with the same seed (common random numbers), so
    differences between policies are not differences of sampling luck.

    `models`: the stage's EvalModels (of the same `rm_dir` and `pm_dir`), shared by its seeds.
    """
    models = models or EvalModels(cfg, rm_dir, pm_dir)
    s = Sampling(
        cfg.samples_per_prompt,
        cfg.temperature,
        1.0,
        0,
        cfg.max_new_tokens,
        seeded(f"eval/seed_{seed}", cfg.seed),
    )
    rows = prompts.to_pylist()
    work = workdir or paths.shards(f"evaluate@{name}")
    outs = sample(
        cfg.backend, policy_dir, [r["messages"] for r in rows], s, EVAL_BATCH, EVAL_SHARD,
        f"{name}-seed_{seed}", work, desc=f"evaluate {name} seed {seed}", server=cfg.server,
    )  # fmt: skip
    _no_failed(outs, name)
    if cfg.judge == "reward_model" and rm_dir is None:
        raise ValueError("evaluate.judge=reward_model needs the reward model (--rm)")
    answers = (
        _follow_ups(cfg, policy_dir, rows, outs, s, f"{name}-seed_{seed}", work)
        if any(r.get("follow_ups") for r in rows)
        else [[[c.text] for c in group] for group in outs]
    )
    flat = [(r, a) for r, per_row in zip(rows, answers, strict=True) for a in per_row]
    # The RM scores the last answer in its conversation (every earlier turn as context); KL to
    # SFT is of the first answer; a pairwise judge compares the answers to all turns, joined.
    prompts_flat = [[*r["messages"], *_turns(a, r.get("follow_ups") or [])] for r, a in flat]
    last = [a[-1] for _, a in flat]
    wins = _pairwise(cfg, rows, [["\n\n".join(a) for a in per_row] for per_row in answers],
                     seed, models, baseline)  # fmt: skip
    proxy = (
        models.scorer.score(prompts_flat, last, desc="proxy (RM)").tolist()
        if rm_dir is not None
        else [None] * len(flat)
    )
    kl = (
        kl_to_reference(
            policy_dir,
            ref_dir,
            [r["messages"] for r, _ in flat],
            [a[0] for _, a in flat],
            desc=f"KL {name} to SFT",
        ).tolist()
        if ref_dir is not None
        else [0.0] * len(flat)
    )
    rewards = iter(proxy)
    extra = iter(zip(proxy, kl, strict=True))
    table = []
    for r, per_row in zip(rows, answers, strict=True):
        text = r["messages"][-1]["content"]
        for k, response in enumerate("\n\n".join(a) for a in per_row):
            if cfg.judge == "gold":
                v = judge(text, response)
                score, correct, n_words = v.gold, v.correctness, v.n_words
            elif cfg.judge in PAIRWISE:
                score, correct, n_words = float("nan"), None, len(words(response))
                next(rewards)
            else:
                score, correct, n_words = next(rewards), None, len(words(response))
            table.append(
                {
                    "policy": name,
                    "seed": seed,
                    "prompt_id": r["prompt_id"],
                    "sample_idx": k,
                    "category": r["category"],
                    "prompt": text,
                    "response": response,
                    "n_words": n_words,
                    "gold": score,
                    "correctness": correct,
                    **dict(zip(("proxy", "kl_to_sft"), next(extra), strict=True)),
                    "judge_win": next(wins),
                }
            )
    return pa.Table.from_pylist(table, schema=EVALUATIONS)


class EvalModels:
    """The reward model and the pairwise judge of one evaluation: each loaded at first use,
    then kept for every seed a stage evaluates (one object per stage run, so a model retrained
    at the same path is never served from an earlier load)."""

    def __init__(self, cfg: EvaluateConfig, rm_dir=None, pm_dir=None):
        self.cfg, self.rm_dir, self.pm_dir = cfg, rm_dir, pm_dir

    @functools.cached_property
    def scorer(self) -> RewardScorer:
        return RewardScorer(self.rm_dir)

    @functools.cached_property
    def judge(self):
        return pairwise_judge(self.cfg.judge, self.rm_dir, self.pm_dir, self.cfg.llm)


def _turns(answers: list[str], follow_ups: list[str]) -> list[dict]:
    """The conversation after the first prompt up to the last user turn: each earlier answer
    followed by the next scripted question."""
    out: list[dict] = []
    for a, q in zip(answers[:-1], follow_ups, strict=False):
        out += [{"role": "assistant", "content": a}, {"role": "user", "content": q}]
    return out


def _pairwise(cfg, rows, outs, seed, models: EvalModels, baseline):
    """Per response, P(it beats the baseline's response to the same prompt and sample) under a
    pairwise judge, both orders averaged; None under pointwise judges."""
    n = sum(len(g) for g in outs)
    if cfg.judge not in PAIRWISE:
        return iter([None] * n)
    if baseline is None:
        return iter([0.5] * n)
    base = {
        (r["prompt_id"], r["sample_idx"]): r["response"]
        for r in baseline.filter(pa.compute.equal(baseline["seed"], seed)).to_pylist()
    }
    keys = [(r["prompt_id"], k) for r, g in zip(rows, outs, strict=True) for k in range(len(g))]
    missing = [k for k in keys if k not in base]
    if missing:
        raise ValueError(
            f"baseline evaluation lacks seed {seed} prompt {missing[0][0]} sample {missing[0][1]}: "
            "were both made with the same seeds and eval settings?"
        )
    ctx = [
        [*r["messages"], *({"role": "user", "content": f} for f in r.get("follow_ups") or [])]
        for r, g in zip(rows, outs, strict=True)
        for _ in g
    ]
    mine = [t for g in outs for t in g]
    c = models.judge.compare(ctx, mine, [base[k] for k in keys], desc=f"{cfg.judge} vs baseline")
    return iter(c.p_a.tolist())


def _grid(df: pl.DataFrame, value: str) -> np.ndarray:
    """(seeds x prompts x samples) array of `value`; raises if the grid has holes."""
    seeds = df["seed"].unique().sort()
    prompts = df["prompt_id"].unique().sort()
    samples = df["sample_idx"].unique().sort()
    shape = (len(seeds), len(prompts), len(samples))
    if df.height != shape[0] * shape[1] * shape[2]:
        raise ValueError(
            f"evaluation is not a full seeds x prompts x samples grid: {df.height} rows for {shape}"
        )
    return df.sort(["seed", "prompt_id", "sample_idx"])[value].to_numpy().reshape(shape)


def policy_metrics(ev: pa.Table, baseline: pa.Table, cfg: EvaluateConfig) -> dict[str, Any]:
    """Gold metrics of `ev` and its win-rates against `baseline` (same seeds, prompts and sample
    indices), each with a bootstrap interval over seeds and prompts."""
    a = pl.from_arrow(ev).select(
        "seed",
        "prompt_id",
        "sample_idx",
        "category",
        "gold",
        "n_words",
        "correctness",
        "proxy",
        "kl_to_sft",
        "judge_win",
    )
    b = pl.from_arrow(baseline).select(
        "seed",
        "prompt_id",
        "sample_idx",
        pl.col("gold").alias("base_gold"),
        pl.col("n_words").alias("base_words"),
    )
    j = a.join(b, on=["seed", "prompt_id", "sample_idx"], how="inner")
    if j.height != a.height:
        raise ValueError(
            f"evaluation and baseline disagree: {a.height} rows, {j.height} matched on "
            "(seed, prompt_id, sample_idx); were they made with the same seeds and eval settings?"
        )
    pairwise = cfg.judge in PAIRWISE
    # A pairwise judge gives the win directly; a pointwise score is compared with the baseline's.
    j = j.with_columns(
        win=pl.col("judge_win")
        if pairwise
        else pl.when(pl.col("gold") > pl.col("base_gold"))
        .then(1.0)
        .when(pl.col("gold") == pl.col("base_gold"))
        .then(0.5)
        .otherwise(0.0),
        len_diff=(pl.col("n_words") - pl.col("base_words")).cast(pl.Float64),
        gold_gain=pl.col("gold") - pl.col("base_gold"),
    )
    boot = dict(n_boot=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed)
    keys = ["win", "len_diff", "n_words", "kl_to_sft"] + ([] if pairwise else ["gold", "gold_gain"])
    keys += ["proxy"] if j["proxy"].null_count() == 0 else []
    grids = {k: _grid(j, k) for k in keys}
    by_seed = (
        j.group_by("seed")
        .agg(
            gold_mean=pl.col("gold").mean(),
            win_rate_vs_sft=pl.col("win").mean(),
            mean_length_words=pl.col("n_words").mean(),
            gold_gain_vs_sft=pl.col("gold_gain").mean(),
            kl_to_sft=pl.col("kl_to_sft").mean(),
        )
        .sort("seed")
    )
    by_cat = (
        j.group_by("category")
        .agg(pl.col("gold").mean(), pl.col("correctness").mean())
        .sort("category")
    )
    return {
        # Under "reward_model" every gold_* and win-rate figure is the RM's view, not ground truth.
        "judge": cfg.judge,
        # A pairwise judge has no pointwise score: only its win-rates are reported.
        "gold_mean": None
        if pairwise
        else bootstrap_mean(grids["gold"].mean(axis=2), **boot).as_dict(),
        # Paired with SFT's answer to the same prompt and sample: far tighter than gold_mean.
        "gold_gain_vs_sft": None
        if pairwise
        else bootstrap_mean(grids["gold_gain"].mean(axis=2), **boot).as_dict(),
        "win_rate_vs_sft": bootstrap_mean(grids["win"].mean(axis=2), **boot).as_dict(),
        "lc_win_rate_vs_sft": bootstrap_lc_win_rate(
            grids["win"],
            grids["len_diff"],
            n_boot=max(100, cfg.bootstrap // 4),
            confidence=cfg.confidence,
            seed=cfg.seed,
        ).as_dict(),
        "mean_length_words": bootstrap_mean(grids["n_words"].mean(axis=2), **boot).as_dict(2),
        # Mean KL(policy || SFT) per response, nats; and the reward model's mean score (the
        # proxy the loop optimised), for the gold-and-proxy-vs-sqrt(KL) figure (Gao et al. 2023).
        "kl_to_sft": bootstrap_mean(grids["kl_to_sft"].mean(axis=2), **boot).as_dict(),
        "proxy_mean": bootstrap_mean(grids["proxy"].mean(axis=2), **boot).as_dict()
        if "proxy" in grids
        else None,
        "correctness": {
            r["category"]: None if r["correctness"] is None else round(r["correctness"], 4)
            for r in by_cat.to_dicts()
        },
        "gold_by_category": None
        if pairwise
        else {r["category"]: round(r["gold"], 4) for r in by_cat.to_dicts()},
        "by_seed": {
            str(r["seed"]): {
                k: round(v, 4)
                for k, v in r.items()
                if k != "seed" and v is not None and v == v  # None or NaN: no gold
            }
            for r in by_seed.to_dicts()
        },
        "n": a.height,
        "seeds": by_seed.height,
    }
