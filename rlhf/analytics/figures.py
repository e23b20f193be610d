"""The report's figures (matplotlib, written as PNG files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from rlhf.analytics.report_data import METRICS, ReportData
from rlhf.core import paths
from rlhf.core.config import Params
from rlhf.core.io import atomic_path

# ---------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on CI machines
    import matplotlib.pyplot as plt

    return plt


def _measured(df: pl.DataFrame, key: str) -> bool:
    """Whether `key` has a finite value anywhere: a pairwise judge (preference model, LLM)
    gives no pointwise score, so the gold columns are then absent or NaN."""
    if key not in df.columns or df.height == 0:
        return False
    return bool(np.isfinite(df[key].cast(pl.Float64).to_numpy()).any())


def _unmeasured(ax, label: str) -> None:
    ax.set_title(label)
    ax.text(0.5, 0.5, "no pointwise score\n(pairwise judge)", ha="center", va="center")
    ax.set_axis_off()


def fig_policies(data: ReportData, out: Path) -> Path:
    plt = _plt()
    df = data.policies
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.8))
    x = np.arange(df.height)
    for ax, (key, label) in zip(axes, METRICS, strict=True):
        if not _measured(df, key):
            _unmeasured(ax, label)
            continue
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
        if not _measured(ps, key):
            _unmeasured(ax, label)
            continue
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
        if not _measured(df, key):
            _unmeasured(ax, label)
            continue
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


def fig_curves(data: ReportData, out: Path) -> Path:
    """The training curves: pretraining/SFT/PM loss, the RM's loss and accuracy, and per DPO
    run (iterations coloured by round, baselines grey) its loss, reward margin, reward accuracy
    and KL to SFT, each against its own steps."""
    plt = _plt()
    curves = data.curves
    fig, axes = plt.subplots(2, 3, figsize=(15, 7))
    single = [r for r in curves if "/" not in r or r.startswith("reward_model/")]
    dpo = [r for r in curves if r not in single]
    rm = [r for r in single if r.startswith("reward_model") and not r.endswith("own_base")]
    ax = axes[0, 0]
    for run in single:
        if "loss" in curves[run] and curves[run]["loss"] and run not in rm:
            s, v = zip(*curves[run]["loss"], strict=True)
            ax.plot(s, v, label=run)
    ax.set(title="LM loss (pretraining, SFT, preference model)", xlabel="step", yscale="log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax = axes[0, 1]
    for run in rm:
        for key, style in (("loss", "-"), ("accuracy", "--")):
            if curves[run].get(key):
                s, v = zip(*curves[run][key], strict=True)
                ax.plot(s, v, style, label=f"{run} {key}")
    ax.set(title="Reward model: BT loss and pair accuracy (training batches)", xlabel="step")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    colours = plt.get_cmap("viridis")
    rounds = sorted(
        {r.split("/")[0] for r in dpo if r.startswith("iter_")},
        key=lambda name: (len(name), name),  # iter_2 before iter_10
    )
    first_seed = {}
    for run in dpo:
        first_seed.setdefault(run.split("/")[0], run)
    for ax, key, title in zip(
        [axes[0, 2], axes[1, 0], axes[1, 1], axes[1, 2]],
        ("loss", "rewards/margins", "rewards/accuracies", "kl_to_sft"),
        ("DPO loss", "DPO reward margin", "DPO reward accuracy", "KL to SFT at each budget check"),
        strict=True,
    ):
        for run in dpo:
            if not curves[run].get(key):
                continue
            name = run.split("/")[0]
            c = colours(rounds.index(name) / max(1, len(rounds) - 1)) if name in rounds else "#aaa"
            s, v = zip(*curves[run][key], strict=True)
            label = name if first_seed[name] == run else None
            ax.plot(s, v, color=c, alpha=0.8, lw=1, label=label)
        ax.set(title=title, xlabel="step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Training curves (DVCLive, reports/curves); DPO: one line per seed")
    fig.tight_layout()
    return _save(fig, out / "curves.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    _plt().close(fig)
    return path
