"""The analytics report: reports/report.html (self-contained) and reports/report.md, with figures
in reports/figures/ and CSV series for `dvc plots` in reports/plots/.

Everything is computed from the pipeline's outputs through DuckDB views (rlhf.analytics) and
Polars; the only Python loop over rows is the gold judge scoring the generations, which is an
evaluation (the judge never feeds training).
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from rlhf import ablations as ablations_lib
from rlhf import analytics, paths
from rlhf.config import Params
from rlhf.io import atomic_path, write_text
from rlhf.schemas import SCORED_GOLD, read_table, write_table
from rlhf.stats import Interval, bootstrap_mean
from rlhf.world.judge import judge

SECTIONS = ("chat", "chat-hard", "safety", "reasoning")
METRICS = (
    ("gold_mean", "gold reward"),
    ("gold_gain_vs_sft", "gold gain vs SFT (paired)"),
    ("win_rate_vs_sft", "win-rate vs SFT"),
    ("lc_win_rate_vs_sft", "LC win-rate vs SFT"),
    ("mean_length_words", "length (words)"),
)
# How far each policy moved from SFT and how the reward model sees it (Gao et al. 2023).
DISTANCE = (
    ("kl_to_sft", "KL to SFT (nats)"),
    ("proxy_mean", "proxy (RM) reward"),
)


def score_gold(scored: pa.Table) -> pa.Table:
    """Gold-judge scores of every generated response (for the length-bias analysis)."""
    cols = scored.select(["iteration", "seed", "prompt_id", "sample_idx", "prompt", "response"])
    rows = []
    for r in cols.to_pylist():
        v = judge(r["prompt"][-1]["content"], r["response"])
        rows.append(
            {
                **{k: r[k] for k in ("iteration", "seed", "prompt_id", "sample_idx")},
                "n_words": v.n_words,
                "gold": v.gold,
                "correctness": v.correctness,
            }
        )
    return pa.Table.from_pylist(rows, schema=SCORED_GOLD)


def policy_order(params: Params) -> list[str]:
    return [*paths.BASELINE_POLICIES, *params.iterations]


@dataclass
class Claim:
    text: str
    holds: bool | None  # None: not measured
    evidence: str
    why: str | None = None
    """For a claim that does not hold: the run's own diagnostics that explain it."""


@dataclass
class ReportData:
    policies: pl.DataFrame
    per_seed: pl.DataFrame
    pair_stats: list[dict[str, Any]]
    rewards: list[dict[str, Any]]
    rewards_raw: pl.DataFrame
    corr: pl.DataFrame
    corr_summary: dict[str, Interval]
    rm_eval: dict[str, Any] | None
    table1: list[dict[str, Any]]
    ablations: list[dict[str, Any]]
    onpolicy: list[dict[str, Any]] = field(default_factory=list)
    """Per iteration: the RM's accuracy on the policy's own samples and best-of-n diagnostics."""
    claims: list[Claim] = field(default_factory=list)
    ablations_note: str | None = None
    """Why no ablations are shown (not collected, or collected for other params)."""
    length_unit: str = "chars"


def _interval(m: dict[str, Any]) -> Interval:
    return Interval(m["mean"], m["lo"], m["hi"])


def load_policies(params: Params, root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows, seeds = [], []
    for i, p in enumerate(policy_order(params)):
        f = root / paths.eval_metrics(p)
        if not f.exists():
            continue
        m = json.loads(f.read_text())
        row: dict[str, Any] = {"policy": p, "step": i}
        for key, _ in (*METRICS, *DISTANCE):
            if m.get(key) is None:  # made before the metric existed, or no RM to score with
                continue
            iv = _interval(m[key])
            row.update({key: iv.mean, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi})
        for c in SECTIONS:
            row[f"correctness_{c}"] = m["correctness"].get(c)
        rows.append(row)
        for s, v in m.get("by_seed", {}).items():
            seeds.append({"policy": p, "seed": int(s), **v})
    return pl.DataFrame(rows), pl.DataFrame(seeds)


def check_claims(data: ReportData, params: Params) -> list[Claim]:
    pol = {r["policy"]: r for r in data.policies.to_dicts()}
    claims = []
    iters = [p for p in params.iterations if p in pol]
    if iters and "offline_dpo" in pol:
        last, off = pol[iters[-1]], pol["offline_dpo"]
        holds = last["win_rate_vs_sft_lo"] > off["win_rate_vs_sft_hi"]
        claims.append(
            Claim(
                f"Iterative DPO ({iters[-1]}) beats offline DPO on gold win-rate vs SFT, "
                "with non-overlapping intervals",
                holds,
                f"{iters[-1]} {_fmt(last, 'win_rate_vs_sft')} vs offline DPO "
                f"{_fmt(off, 'win_rate_vs_sft')}",
            )
        )
    if "offline_dpo" in pol:
        off = pol["offline_dpo"]
        claims.append(
            Claim(
                "Offline DPO beats SFT (win-rate vs SFT above 0.5, interval excluding 0.5)",
                off["win_rate_vs_sft_lo"] > 0.5,
                f"offline DPO {_fmt(off, 'win_rate_vs_sft')}",
                _why_offline(data, params, pol, iters),
            )
        )
    if iters:
        last = pol[iters[-1]]
        claims.append(
            Claim(
                f"Iterative DPO ({iters[-1]}) raises the gold reward over SFT (paired gain, "
                "interval above 0)",
                last["gold_gain_vs_sft_lo"] > 0,
                f"gain {_fmt(last, 'gold_gain_vs_sft')}",
            )
        )
    if len(iters) > 1:
        first, last = pol[iters[0]], pol[iters[-1]]
        claims.append(
            Claim(
                f"The gold gain over SFT grows with iterations: {iters[-1]}'s paired gain above "
                f"{iters[0]}'s, with non-overlapping intervals",
                last["gold_gain_vs_sft_lo"] > first["gold_gain_vs_sft_hi"],
                f"{iters[0]} {_fmt(first, 'gold_gain_vs_sft')}, "
                f"{iters[-1]} {_fmt(last, 'gold_gain_vs_sft')}",
                _why_no_growth(data, pol, iters),
            )
        )
    if data.corr_summary:
        rm, gold = data.corr_summary["rm"], data.corr_summary["gold"]
        claims.append(
            Claim(
                "The reward model rewards length more than the gold judge does: a higher "
                "per-prompt length-reward correlation (paper Fig. 5)",
                rm.lo > gold.hi,
                f"mean per-prompt length-reward r: RM {rm.mean:.3f} [{rm.lo:.3f}, {rm.hi:.3f}], "
                f"gold {gold.mean:.3f} [{gold.lo:.3f}, {gold.hi:.3f}]",
                _why_no_length_bias(data),
            )
        )
    if params.evaluate.judge != "gold":
        # Every claim above is about ground truth; the RM judging its own policies is not it.
        return [
            Claim(
                c.text,
                None,
                "not measured: evaluate.judge is the reward model (real prompts have no gold "
                "judge); run an external benchmark on the saved policies",
            )
            for c in claims
        ]
    lp = _ablations_changing(data, "score.length_penalty")
    base = [a for a in data.ablations if a.get("ablation") == ablations_lib.BASELINE]
    if lp and base:
        a, b = lp[0]["final"], base[0]["final"]
        shorter = a["mean_length_words"]["hi"] < b["mean_length_words"]["lo"]
        higher_lc = a["lc_win_rate_vs_sft"]["mean"] > b["lc_win_rate_vs_sft"]["mean"]
        claims.append(
            Claim(
                "A length penalty makes answers shorter and raises the length-controlled win-rate",
                shorter and higher_lc,
                f"length {a['mean_length_words']['mean']:.1f} vs {b['mean_length_words']['mean']:.1f} "
                f"words; LC win-rate {a['lc_win_rate_vs_sft']['mean']:.3f} vs "
                f"{b['lc_win_rate_vs_sft']['mean']:.3f}",
                _why_penalty(data, lp[0], base[0]),
            )
        )
    else:
        claims.append(
            Claim(
                "A length penalty makes answers shorter and raises the length-controlled win-rate",
                None,
                f"ablations: {data.ablations_note or 'no length_penalty or baseline run'}",
            )
        )
    return claims


# Why a claim fails, from the run's own diagnostics (issue: "a measured explanation in the
# report"). Each returns None when the diagnostics it needs are absent.


def _ablations_changing(data: ReportData, key: str) -> list[dict[str, Any]]:
    """Collected ablations whose params change `key`, found by their params, not their names."""
    return [
        a
        for a in data.ablations
        if key in ablations_lib.ABLATIONS.get(a.get("ablation", ""), ({}, ""))[0]
    ]


def _iv_text(iv: dict[str, float], digits: int = 3) -> str:
    return f"{iv['mean']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


def _why_offline(
    data: ReportData, params: Params, pol: dict[str, dict[str, Any]], iters: list[str]
) -> str | None:
    off = pol["offline_dpo"]
    parts = []
    if off.get("kl_to_sft") is not None and iters and pol[iters[-1]].get("kl_to_sft") is not None:
        parts.append(
            f"offline DPO moved {off['kl_to_sft']:.3f} nats from SFT, {iters[-1]} "
            f"{pol[iters[-1]]['kl_to_sft']:.2f}: pairs written by other model families barely "
            "change the policy's own samples"
        )
    n_default = params.offline_dpo.n_pairs or params.prompts.slice_size
    more = []
    for a in sorted(
        _ablations_changing(data, "offline_dpo.n_pairs"),
        key=lambda a: ablations_lib.ABLATIONS[a["ablation"]][0]["offline_dpo.n_pairs"],
    ):
        wr = a.get("policies", {}).get("offline_dpo", {}).get("win_rate_vs_sft")
        if isinstance(wr, dict):
            n = ablations_lib.ABLATIONS[a["ablation"]][0]["offline_dpo.n_pairs"]
            more.append(f"{n} pairs {_iv_text(wr)}")
    if more:
        parts.append(
            f"with more of the mix than the default {n_default} pairs (ablations), offline "
            "DPO's win-rate vs SFT is " + ", ".join(more)
        )
    return "; ".join(parts) or None


def _why_no_growth(
    data: ReportData, pol: dict[str, dict[str, Any]], iters: list[str]
) -> str | None:
    points = [
        (p, pol[p]["kl_to_sft"], pol[p]["gold_gain_vs_sft"])
        for p in iters
        if pol[p].get("kl_to_sft") is not None
    ]
    # Only runs that change how DPO moves the policy: replicates have another RM, and the
    # offline or length-penalty runs change something else than the distance travelled.
    for a in data.ablations:
        f = a.get("final", {})
        keys = ablations_lib.ABLATIONS.get(a.get("ablation", ""), ({}, ""))[0]
        if keys and all(k.startswith("dpo.") for k in keys) and "kl_to_sft" in f:
            points.append(
                (
                    f"{a['ablation']} ({a['final_iteration']})",
                    f["kl_to_sft"]["mean"],
                    f["gold_gain_vs_sft"]["mean"],
                )
            )
    if len(points) < 2:
        return None
    acc = {r["iteration"]: r.get("rm_accuracy") for r in data.onpolicy}
    parts = [
        "KL to SFT and gold gain per iteration: "
        + ", ".join(f"{p} {kl:.2f} nats / {g:+.3f}" for p, kl, g in points if p in iters)
    ]
    if all(acc.get(p) is not None for p in iters):
        parts.append(
            "the RM's accuracy on each iteration's own samples "
            + ", ".join(f"{acc[p]:.3f}" for p in iters)
        )
    peak = max(points, key=lambda t: t[2])
    further = [t for t in points if t[1] > peak[1] and t[0] != peak[0]]
    if further:
        parts.append(
            f"the gold gain peaks at {peak[1]:.2f} nats ({peak[0]}, {peak[2]:+.3f}) and every run "
            "that moved further from SFT gained less ("
            + ", ".join(f"{p} {kl:.2f} nats / {g:+.3f}" for p, kl, g in further)
            + "): past that distance the policy gains on the proxy RM, not on gold, so more "
            "iterations under a fixed RM stop adding gold (Gao et al. 2023)"
        )
    return "; ".join(parts)


def _why_no_length_bias(data: ReportData) -> str | None:
    gold = data.corr_summary.get("gold")
    parts = []
    if gold is not None and gold.hi < 0:
        parts.append(
            f"the gold judge itself prefers shorter answers in this world (r {gold.mean:.3f})"
        )
    rows = [r for r in data.table1 if r.get("source") != "total"]
    total = [r for r in data.table1 if r.get("source") == "total"]
    if rows and total:
        t = total[0]
        longer = sorted(
            (r for r in rows if r["mean_chosen_length"] > r["mean_rejected_length"]),
            key=lambda r: r["mean_rejected_length"] - r["mean_chosen_length"],
        )
        parts.append(
            "in the preference mix chosen answers average "
            f"{t['mean_chosen_length']:.1f} words against {t['mean_rejected_length']:.1f} "
            "for rejected"
            + (
                "; longer chosen answers only in "
                + ", ".join(
                    f"{r['source']} ({r['n_pairs']} of {t['n_pairs']} pairs, "
                    f"{r['mean_chosen_length']:.1f} vs {r['mean_rejected_length']:.1f})"
                    for r in longer
                )
                if longer
                else ""
            )
            + ": the RM learns the labels' length preference, which here is weaker than "
            "gold's brevity preference, not stronger"
        )
    return "; ".join(parts) or None


def _why_penalty(data: ReportData, lp: dict[str, Any], base: dict[str, Any]) -> str | None:
    a, b = lp["final"], base["final"]
    gold = data.corr_summary.get("gold")
    rm = data.corr_summary.get("rm")
    parts = [
        f"its raw win-rate is {a['win_rate_vs_sft']['mean']:.3f} against "
        f"{b['win_rate_vs_sft']['mean']:.3f}"
    ]
    if gold is not None and rm is not None and gold.hi < 0 and rm.mean <= 0 and rm.lo <= gold.hi:
        parts.append(
            f"but both the gold judge (r {gold.mean:.3f}) and the RM (r {rm.mean:.3f}) already "
            "prefer shorter answers, so the penalty only buys brevity that gold rewards anyway, "
            "and the length-controlled win-rate, which removes exactly that credit, does not "
            "rise: a length penalty helps where the RM over-rewards length, which this run's RM "
            "does not"
        )
    return "; ".join(parts)


def _fmt(row: dict[str, Any], key: str, digits: int = 3) -> str:
    return f"{row[key]:.{digits}f} [{row[key + '_lo']:.{digits}f}, {row[key + '_hi']:.{digits}f}]"


def collect(params: Params, root: Path = Path(".")) -> ReportData:
    cfg = params.report
    con = analytics.connect()
    views = analytics.register_views(con, root, list(params.iterations))
    policies, per_seed = load_policies(params, root)
    have_loop = {"scored", "pairs", "gold"} <= set(views)
    corr = analytics.length_reward_correlations(con) if have_loop else pl.DataFrame()
    corr_summary = {}
    if have_loop and corr.height:
        for k in ("rm", "gold"):
            # Mean r per (seed x prompt) cell; interval over seeds and prompts as elsewhere.
            # Sorted throughout: the bootstrap draws rows by position, so row order must not
            # depend on hash-based grouping (it did: the interval moved in the third decimal).
            cells = (
                corr.drop_nulls(f"r_{k}")
                .sort("seed", "prompt_id", "iteration")
                .group_by("seed", "prompt_id", maintain_order=True)
                .agg(pl.col(f"r_{k}").mean())
            )
            grid = (
                cells.pivot(on="seed", index="prompt_id", values=f"r_{k}", sort_columns=True)
                .sort("prompt_id")
                .drop("prompt_id")
            )
            grid = grid.drop_nulls()
            corr_summary[k] = (
                bootstrap_mean(grid.to_numpy().T, cfg.bootstrap, cfg.confidence, cfg.seed)
                if grid.height
                else Interval(float("nan"), float("nan"), float("nan"))
            )
    rm_file = root / paths.RM_EVAL
    abl_runs, abl_note = ablations_lib.load(root, params, root / cfg.ablations)
    data = ReportData(
        policies=policies,
        per_seed=per_seed,
        pair_stats=analytics.pair_stats(con) if have_loop else [],
        rewards=analytics.reward_distribution(con) if "scored" in views else [],
        rewards_raw=con.sql("SELECT iteration, reward FROM scored").pl()
        if "scored" in views
        else pl.DataFrame(),
        corr=corr,
        corr_summary=corr_summary,
        rm_eval=json.loads(rm_file.read_text()) if rm_file.exists() else None,
        table1=analytics.table1_stats(views["preferences"], con) if "preferences" in views else [],
        ablations=abl_runs,
        ablations_note=abl_note,
        length_unit=params.score.length_unit,
    )
    if have_loop:
        data.onpolicy = analytics.onpolicy_diagnostics(con)
    data.claims = check_claims(data, params)
    return data


# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    return plt


def fig_policies(data: ReportData, out: Path) -> Path:
    plt = _plt()
    df = data.policies
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.8))
    x = np.arange(df.height)
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        mean = df[key].to_numpy()
        err = np.stack([mean - df[f"{key}_lo"].to_numpy(), df[f"{key}_hi"].to_numpy() - mean])
        colors = [
            "#888" if p == "sft" else "#c77" if p == "offline_dpo" else "#47a" for p in df["policy"]
        ]
        ax.bar(x, mean, yerr=err, color=colors, capsize=4)
        ax.set_xticks(x, df["policy"].to_list(), rotation=30, ha="right")
        ax.set_title(label)
        if "win" in key:
            ax.axhline(0.5, color="k", lw=0.8, ls="--")
            ax.set_ylim(
                max(0.0, float(df[f"{key}_lo"].min()) - 0.1),
                min(1.0, float(df[f"{key}_hi"].max()) + 0.1),
            )
        elif key == "gold_gain_vs_sft":
            ax.axhline(0.0, color="k", lw=0.8, ls="--")
        elif key == "gold_mean":
            ax.set_ylim(float(df[f"{key}_lo"].min()) - 0.05, float(df[f"{key}_hi"].max()) + 0.05)
    fig.suptitle(
        f"Policies on the held-out eval prompts ({int(data.per_seed['seed'].n_unique()) if data.per_seed.height else 1} seeds; bars: 95% bootstrap interval)"
    )
    fig.tight_layout()
    return _save(fig, out / "policies.png")


def fig_trajectories(data: ReportData, params: Params, out: Path) -> Path:
    plt = _plt()
    order = ["sft", *params.iterations]
    ps = data.per_seed.filter(pl.col("policy").is_in(order))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for ax, key, label in zip(
        axes,
        ("gold_mean", "win_rate_vs_sft", "mean_length_words"),
        ("gold reward", "win-rate vs SFT", "length (words)"),
        strict=True,
    ):
        for seed in sorted(ps["seed"].unique().to_list()):
            s = ps.filter(pl.col("seed") == seed)
            ys = [s.filter(pl.col("policy") == p)[key].to_list() for p in order]
            ax.plot(
                range(len(order)),
                [y[0] if y else np.nan for y in ys],
                "o-",
                alpha=0.7,
                label=f"seed {seed}",
            )
        off = data.per_seed.filter(pl.col("policy") == "offline_dpo")
        if off.height:
            ax.axhline(float(off[key].mean()), color="#c77", ls="--", label="offline DPO (mean)")
        ax.set_xticks(range(len(order)), order, rotation=30, ha="right")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("Per-iteration trend, one line per seed")
    fig.tight_layout()
    return _save(fig, out / "trajectories.png")


def fig_overoptimisation(data: ReportData, out: Path) -> Path:
    """Gold and proxy reward against sqrt(KL to SFT) per policy, as in Gao et al. 2023: where
    the proxy keeps rising while gold flattens or falls, the policy over-optimises the RM."""
    plt = _plt()
    df = data.policies.filter(pl.col("proxy_mean").is_not_null())
    x = np.sqrt(np.maximum(df["kl_to_sft"].to_numpy(), 0.0))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, label in zip(
        axes, ("gold_mean", "proxy_mean"), ("gold reward", "proxy (RM) reward"), strict=True
    ):
        y = df[key].to_numpy()
        err = np.stack([y - df[f"{key}_lo"].to_numpy(), df[f"{key}_hi"].to_numpy() - y])
        ax.errorbar(x, y, yerr=err, fmt="none", ecolor="#999", capsize=3)
        loop = [i for i, p in enumerate(df["policy"]) if p not in paths.BASELINE_POLICIES[1:]]
        ax.plot(x[loop], y[loop], "o-", color="#47a", label="SFT and iterations")
        for i, p in enumerate(df["policy"]):
            if p in paths.BASELINE_POLICIES[1:]:
                ax.plot(x[i], y[i], "s", color="#c77" if p == "offline_dpo" else "#7a4", label=p)
            ax.annotate(p, (x[i], y[i]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("sqrt(KL(policy || SFT)), sqrt(nats)")
        ax.set_title(label)
    axes[0].legend(fontsize=7)
    fig.suptitle("Gold and proxy reward against distance from SFT (Gao et al. 2023)")
    fig.tight_layout()
    return _save(fig, out / "overoptimisation.png")


def fig_pairs(data: ReportData, out: Path) -> Path:
    plt = _plt()
    ps = pl.DataFrame(data.pair_stats)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    it = ps["iteration"].to_list()
    axes[0].bar(it, ps["mean_margin"].to_list(), color="#47a")
    axes[0].set_title("mean reward margin (chosen - rejected)")
    w = 0.4
    x = np.arange(len(it))
    axes[1].bar(x - w / 2, ps["mean_chosen_length"].to_list(), w, label="chosen")
    axes[1].bar(x + w / 2, ps["mean_rejected_length"].to_list(), w, label="rejected")
    axes[1].set_xticks(x, it)
    axes[1].set_title(f"response length ({data.length_unit})")
    axes[1].legend()
    axes[2].bar(x - w / 2, ps["drop_rate"].to_list(), w, label="dropped (ties, identical)")
    axes[2].bar(x + w / 2, ps["chosen_longer_rate"].to_list(), w, label="chosen is longer")
    axes[2].set_xticks(x, it)
    axes[2].set_ylim(0, 1)
    axes[2].set_title("rates")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, out / "pairs.png")


def fig_rewards(data: ReportData, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for it in sorted(data.rewards_raw["iteration"].unique().to_list()):
        r = data.rewards_raw.filter(pl.col("iteration") == it)["reward"].to_numpy()
        ax.hist(r, bins=40, histtype="step", lw=1.5, density=True, label=it)
    ax.set_xlabel("reward-model score")
    ax.set_title("Reward distribution of generated responses per iteration")
    ax.legend()
    fig.tight_layout()
    return _save(fig, out / "rewards.png")


def fig_length_corr(data: ReportData, out: Path) -> Path:
    plt = _plt()
    its = sorted(data.corr["iteration"].unique().to_list())
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    bins = np.linspace(-1, 1, 21)
    for k, label in (("rm", "reward model"), ("gold", "gold judge")):
        r = data.corr[f"r_{k}"].drop_nulls().to_numpy()
        axes[0].hist(r, bins=bins, alpha=0.55, label=f"{label} (mean {np.mean(r):.2f})")
    axes[0].axvline(0, color="k", lw=0.8)
    axes[0].set_xlabel("per-prompt Pearson r(length, reward) over the n samples")
    axes[0].set_title("Length-reward correlation (paper Fig. 5)")
    axes[0].legend(fontsize=8)
    heat = np.full((2, len(its)), np.nan)
    for j, it in enumerate(its):
        sub = data.corr.filter(pl.col("iteration") == it)
        heat[0, j] = sub["r_rm"].drop_nulls().mean() or np.nan
        heat[1, j] = sub["r_gold"].drop_nulls().mean() or np.nan
    im = axes[1].imshow(heat, cmap="coolwarm", vmin=-0.6, vmax=0.6, aspect="auto")
    for (i, j), v in np.ndenumerate(heat):
        axes[1].text(j, i, f"{v:.2f}", ha="center", va="center")
    axes[1].set_xticks(range(len(its)), its)
    axes[1].set_yticks([0, 1], ["RM", "gold"])
    axes[1].set_title("mean r per iteration")
    fig.colorbar(im, ax=axes[1])
    fig.tight_layout()
    return _save(fig, out / "length_reward_corr.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    _plt().close(fig)
    return path


# ---------------------------------------------------------------------------------------
# Tables and documents
# ---------------------------------------------------------------------------------------


def _md_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], digits: int = 3) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(label for _, label in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def policies_markdown(df: pl.DataFrame) -> str:
    rows = []
    for r in df.to_dicts():
        row = {"policy": r["policy"]}
        for key, _ in METRICS:
            d = 1 if key == "mean_length_words" else 3
            row[key] = _fmt(r, key, d)
        row["correctness"] = " / ".join(f"{r.get(f'correctness_{c}') or 0:.2f}" for c in SECTIONS)
        rows.append(row)
    cols = [("policy", "policy"), *[(k, f"{label} [95% CI]") for k, label in METRICS]]
    cols.append(("correctness", "correctness: " + " / ".join(SECTIONS)))
    return _md_table(rows, cols)


def controls_markdown(data: ReportData) -> str:
    """What each control compares, with the win-rates that answer it."""
    pol = {r["policy"]: r for r in data.policies.to_dicts()}
    iters = [p for p in pol if p not in paths.BASELINE_POLICIES]
    rows = [
        (
            "offline_dpo",
            "offline DPO: off-policy pairs (other model families), annotator labels",
        ),
        (
            "onpolicy_dpo",
            "on-policy control: SFT's samples, labelled once by the RM, one DPO run on as many "
            "prompts as all iterations",
        ),
    ]
    if iters:
        rows.append((iters[-1], f"online iterative DPO, {len(iters)} rounds of fresh samples"))
    table = _md_table(
        [
            {
                "policy": p,
                "what": what,
                "win": _fmt(pol[p], "win_rate_vs_sft"),
                "gain": _fmt(pol[p], "gold_gain_vs_sft"),
            }
            for p, what in rows
            if p in pol
        ],
        [
            ("policy", "policy"),
            ("what", "data"),
            ("win", "win-rate vs SFT [95% CI]"),
            ("gain", "gold gain vs SFT [95% CI]"),
        ],
    )
    return (
        "Offline DPO vs the on-policy control isolates on-policy data (same DPO, same "
        "reference; other writers and labels). The on-policy control vs the last iteration "
        "isolates iterating: the same RM labels, but fresh samples of each improved policy "
        "instead of one round on SFT's.\n\n" + table
    )


def _fmt_iv(iv: dict[str, float], digits: int) -> str:
    return f"{iv['mean']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


def ablations_markdown(runs: list[dict[str, Any]]) -> str:
    rows = []
    for a in runs:
        f = a["final"]
        rows.append(
            {
                "ablation": a["ablation"],
                "change": a["change"],
                "seeds": a.get("seeds"),
                **{
                    k: _fmt_iv(f[k], 1 if k == "mean_length_words" else 3)
                    for k, _ in (*METRICS, DISTANCE[0])
                    if k in f  # runs collected before a metric existed lack it
                },
            }
        )
        off = a.get("policies", {}).get("offline_dpo", {}).get("win_rate_vs_sft")
        if isinstance(off, dict):
            rows[-1]["offline_win_rate"] = _fmt_iv(off, 3)
    cols = [("ablation", "ablation"), ("change", "params changed"), ("seeds", "seeds")]
    cols += [(k, f"final iteration: {label}") for k, label in (*METRICS, DISTANCE[0])]
    cols += [("offline_win_rate", "offline DPO: win-rate vs SFT")]
    return _md_table(rows, cols)


def build_sections(
    data: ReportData, params: Params, figs: dict[str, Path]
) -> list[tuple[str, str, str | None]]:
    """(title, markdown body, figure key) per section, shared by the HTML and markdown outputs."""
    s: list[tuple[str, str, str | None]] = []
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT MEASURED"}
    s.append(
        (
            "Claims of the paper, checked on this run",
            "\n".join(
                f"- **{verdict[c.holds]}** — {c.text}: {c.evidence}."
                + (f" *Why:* {c.why}." if c.holds is False and c.why else "")
                for c in data.claims
            ),
            None,
        )
    )
    if data.policies.height:
        judged_by = (
            "Gold-judge metrics"
            if params.evaluate.judge == "gold"
            else "**Reward-model proxy** metrics (evaluate.judge=reward_model: the 'gold' columns "
            "are the trained RM's scores, not ground truth)"
        )
        s.append(
            (
                "Policies: gold reward and win-rate against SFT",
                f"{judged_by} on the held-out eval prompts; intervals are 95% two-level "
                "bootstrap intervals (seeds, then prompts). SFT's win-rate against itself is 0.5 by "
                "construction.\n\n" + policies_markdown(data.policies),
                "policies",
            )
        )
        s.append(
            (
                "Per-iteration trend",
                "Each line is one seed's run of the online loop.",
                "trajectories",
            )
        )
    if data.policies.height and "onpolicy_dpo" in data.policies["policy"].to_list():
        s.append(("Controls", controls_markdown(data), None))
    if "kl_to_sft" in data.policies.columns:
        rows = [
            {"policy": r["policy"], **{k: _fmt(r, k) for k, _ in DISTANCE if r.get(k) is not None}}
            for r in data.policies.to_dicts()
            if r.get("kl_to_sft") is not None
        ]
        s.append(
            (
                "Distance from SFT and reward over-optimisation",
                "Mean KL(policy || SFT) per eval response (the exact next-token KL summed along "
                "the policy's own samples, nats) and the reward model's mean score of the same "
                "responses. Against sqrt(KL), a proxy that keeps rising while gold flattens is the "
                "over-optimisation of Gao et al. 2023.\n\n"
                + _md_table(
                    rows, [("policy", "policy"), *[(k, f"{lb} [95% CI]") for k, lb in DISTANCE]]
                ),
                "overoptimisation",
            )
        )
    if data.onpolicy:
        heldout = (data.rm_eval or {}).get("accuracy")
        rows = [{**r, "heldout_accuracy": heldout} for r in data.onpolicy]
        cols = [
            ("iteration", "iteration"),
            ("rm_accuracy", "RM accuracy on own samples"),
            ("heldout_accuracy", "RM held-out accuracy"),
            ("gold_pairs", "gold-untied sample pairs"),
            ("gold_mean", "gold: all samples"),
            ("gold_chosen", "gold: chosen (RM best-of-n)"),
            ("gold_rejected", "gold: rejected (RM worst-of-n)"),
            ("gold_best_of_n", "gold: gold's best-of-n"),
            ("proxy_chosen", "proxy: chosen"),
            ("proxy_rejected", "proxy: rejected"),
        ]
        s.append(
            (
                "On-policy diagnostics: the reward model on the samples it labels",
                "Per iteration, over every pair of one prompt's n samples that the gold judge does "
                "not tie: how often the RM (length-penalised score) orders them as gold does, next "
                "to its accuracy on held-out pairs written by the offline sources' model families. "
                "Then the gold and proxy reward of the pairs the loop trained on, and the gold of "
                "the best of n had gold picked it: the gap to the chosen column is what the RM's "
                "errors cost.\n\n" + _md_table(rows, cols),
                None,
            )
        )
    if data.pair_stats:
        cols = [
            ("iteration", "iteration"),
            ("prompt_groups", "prompt groups (seed x prompt)"),
            ("n_pairs", "pairs"),
            ("drop_rate", "drop rate"),
            ("tie_rate", "all-tied rate"),
            ("mean_margin", "mean reward margin"),
            ("mean_chosen_length", f"chosen length ({data.length_unit})"),
            ("mean_rejected_length", f"rejected length ({data.length_unit})"),
            ("chosen_longer_rate", "chosen longer"),
        ]
        s.append(("On-policy pair statistics", _md_table(data.pair_stats, cols), "pairs"))
    if data.rewards:
        cols = [
            ("iteration", "iteration"),
            ("responses", "responses"),
            ("mean_reward", "mean"),
            ("sd_reward", "sd"),
            ("p10", "p10"),
            ("p50", "median"),
            ("p90", "p90"),
        ]
        s.append(("Reward distributions", _md_table(data.rewards, cols), "rewards"))
    if data.corr_summary:
        rm, gold = data.corr_summary["rm"], data.corr_summary["gold"]
        n = data.corr.height
        body = (
            f"Per prompt, the Pearson correlation between response length and reward over its n "
            f"samples ({n} prompt groups; prompts whose samples all tie are left out). "
            f"Mean r: reward model {rm.mean:.3f} [{rm.lo:.3f}, {rm.hi:.3f}], gold judge "
            f"{gold.mean:.3f} [{gold.lo:.3f}, {gold.hi:.3f}]."
        )
        s.append(("Length bias of the reward model", body, "length_corr"))
    if data.rm_eval and "accuracy" in data.rm_eval:
        rm = data.rm_eval
        rows = [{"section": k, "accuracy": v} for k, v in sorted(rm["accuracy_by_section"].items())]
        rows.append({"section": "all", "accuracy": rm["accuracy"]})
        for i, a in enumerate(rm.get("member_accuracy", [])):
            rows.append({"section": f"all, ensemble member {i} alone", "accuracy": a})
        if "accuracy_demonstrator_style" in rm:
            rows.append(
                {
                    "section": "all, written in the policy's (tutor) style",
                    "accuracy": rm["accuracy_demonstrator_style"],
                }
            )
        s.append(
            (
                "Reward-model evaluation",
                f"Accuracy against the gold judge on {rm['heldout_pairs']} held-out pairs written by the "
                "offline sources' families, per section; then on pairs drawn the same way in the SFT "
                "style.\n\n" + _md_table(rows, [("section", "section"), ("accuracy", "accuracy")]),
                None,
            )
        )
    if data.table1:
        cols = [
            ("source", "source"),
            ("n_pairs", "#pairs"),
            ("n_prompts", "#prompts"),
            ("mean_prompt_turns", "prompt turns"),
            ("mean_prompt_length", "prompt length"),
            ("mean_chosen_length", "chosen length"),
            ("mean_rejected_length", "rejected length"),
        ]
        s.append(
            (
                "Preference mix (the paper's Table 1; lengths in words)",
                _md_table(data.table1, cols),
                None,
            )
        )
    if data.ablations:
        s.append(
            (
                "Ablations",
                "Each row is one `dvc exp run` (see the README); the final iteration's "
                "metrics with 95% intervals.\n\n" + ablations_markdown(data.ablations),
                None,
            )
        )
    else:
        s.append(
            (
                "Ablations",
                f"Not shown: {data.ablations_note}.",
                None,
            )
        )
    return s


SUMMARY_SECTIONS = (
    "Claims of the paper, checked on this run",
    "Policies: gold reward and win-rate against SFT",
    "Controls",
    "On-policy diagnostics: the reward model on the samples it labels",
    "Length bias of the reward model",
    "Reward-model evaluation",
    "Ablations",
)


def summary_markdown(sections) -> str:
    """The headline sections without figures: what the README's results block shows."""
    parts = []
    for title, body, _ in sections:
        if title in SUMMARY_SECTIONS:
            parts.append(f"**{title}.**\n\n{body}\n")
    return "\n".join(parts)


def render_markdown(sections, figs: dict[str, Path], out_dir: Path) -> str:
    parts = ["# RLHF workflow report\n"]
    for title, body, fig in sections:
        parts.append(f"## {title}\n\n{body}\n")
        if fig and fig in figs:
            parts.append(f"![{title}]({figs[fig].relative_to(out_dir).as_posix()})\n")
    return "\n".join(parts)


def _md_to_html(body: str) -> str:
    """The tiny markdown subset the sections use: tables, bullet lists, bold, code, paragraphs."""
    import re

    def inline(t: str) -> str:
        t = html.escape(t)
        t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", t)

    out, lines, i = [], body.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append([c.strip() for c in lines[i].strip("|").split("|")])
                i += 1
            head, rest = rows[0], rows[2:]
            out.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rest]
            out.append("</table>")
            continue
        if line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
            continue
        if line.strip():
            out.append(f"<p>{inline(line)}</p>")
        i += 1
    return "\n".join(out)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"""


def render_html(sections, figs: dict[str, Path]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>RLHF workflow report</title><style>{CSS}</style></head><body>",
        "<h1>RLHF workflow report</h1>",
    ]
    for title, body, fig in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>\n{_md_to_html(body)}")
        if fig and fig in figs:
            b64 = base64.b64encode(figs[fig].read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_plot_series(data: ReportData, out: Path) -> None:
    """CSV series for `dvc plots show` / `dvc plots diff` (see the plots section of dvc.yaml)."""
    out.mkdir(parents=True, exist_ok=True)
    if data.policies.height:
        _write_csv(
            data.policies.select(
                "policy", "step", *[c for k, _ in METRICS for c in (k, f"{k}_lo", f"{k}_hi")]
            ),
            out / "policies.csv",
        )
    if data.pair_stats:
        _write_csv(pl.DataFrame(data.pair_stats), out / "pairs.csv")
    if data.corr.height:
        bins = np.linspace(-1, 1, 21)
        rows = []
        for k in ("rm", "gold"):
            h, _ = np.histogram(data.corr[f"r_{k}"].drop_nulls().to_numpy(), bins=bins)
            rows += [
                {"judge": k, "r": round(float(c), 2), "prompts": int(n)}
                for c, n in zip((bins[:-1] + bins[1:]) / 2, h, strict=True)
            ]
        _write_csv(pl.DataFrame(rows), out / "length_reward_corr.csv")


def _write_csv(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp)


def build_report(params: Params, root: Path = Path(".")) -> ReportData:
    """Score generations with the gold judge, then write the figures, plots and documents."""
    scored_files = sorted(root.glob(paths.GLOBS["scored"]))
    if scored_files and params.evaluate.judge == "gold":
        scored = pa.concat_tables([read_table("scored", f) for f in scored_files])
        write_table("scored_gold", score_gold(scored), root / paths.SCORED_GOLD)
    elif scored_files:  # no gold judge for real prompts: an empty table, not a stale one
        write_table("scored_gold", SCORED_GOLD.empty_table(), root / paths.SCORED_GOLD)
    data = collect(params, root)
    fig_dir = root / paths.FIGURES_DIR
    figs: dict[str, Path] = {}
    if data.policies.height:
        figs["policies"] = fig_policies(data, fig_dir)
        figs["trajectories"] = fig_trajectories(data, params, fig_dir)
    if data.policies.height and "proxy_mean" in data.policies.columns:
        figs["overoptimisation"] = fig_overoptimisation(data, fig_dir)
    if data.pair_stats:
        figs["pairs"] = fig_pairs(data, fig_dir)
    if data.rewards:
        figs["rewards"] = fig_rewards(data, fig_dir)
    if data.corr.height:
        figs["length_corr"] = fig_length_corr(data, fig_dir)
    sections = build_sections(data, params, figs)
    write_plot_series(data, root / paths.PLOTS_DIR)
    out_dir = root / paths.REPORTS_DIR
    write_text(root / paths.REPORT_MD, render_markdown(sections, figs, out_dir))
    write_text(root / paths.REPORT_SUMMARY_MD, summary_markdown(sections))
    write_text(root / paths.REPORT_HTML, render_html(sections, figs))
    return data
