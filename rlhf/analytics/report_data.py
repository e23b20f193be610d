"""What the report shows, gathered from the pipeline's outputs: each policy's evaluation metrics,
the loop's tables through DuckDB views (rlhf.analytics), the reward-model evaluation, the
collected ablations. Presentation lives in rlhf.analytics.render and rlhf.analytics.figures,
verdicts in rlhf.analytics.claims; rlhf.analytics.report puts them together."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from rlhf.analytics import ablations as ablations_lib
from rlhf.analytics import views as analytics
from rlhf.core import paths
from rlhf.core.config import Params
from rlhf.core.duck import connect
from rlhf.core.stats import Interval, bootstrap_mean
from rlhf.preferences.table1 import table1_stats

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
    """Unit of the loop's response lengths, as the scored tables record it."""
    judge: str = "gold"
    """Who judged the evaluations, as their metrics files record it: gold, reward_model,
    preference_model or llm."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    """Training curves (rlhf.models.curves) by run (`sft`, `iter_1/seed_0`, ...) and metric:
    (step, value) rows."""

    def ablation(self, name: str) -> dict[str, Any] | None:
        """The collected run of ablation `name` (rlhf.analytics.ablations), or None."""
        return next((a for a in self.ablations if a["ablation"] == name), None)

    samples: pl.DataFrame = field(default_factory=pl.DataFrame)
    """What the policies write: for one evaluation prompt per category, each policy's first
    sample of seed 0, with its gold reward."""
    kl_rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per budgeted DPO round and seed: the KL budget, the KL its last check reached, the steps
    trained, whether the budget stopped it, and the evaluation's KL of the policy it made."""


def recorded_judge(policies: pl.DataFrame, params: Params) -> str:
    """The judge the evaluation metrics record (one for all policies); params' evaluate.judge
    only for metrics written before the judge was recorded."""
    judges = (
        dict(zip(policies["policy"], policies["judge"], strict=True)) if policies.height else {}
    )
    if len(set(judges.values())) > 1:
        raise ValueError(f"evaluations judged by different judges, not comparable: {judges}")
    return next(iter(judges.values()), params.evaluate.judge)


def _interval(m: dict[str, Any]) -> Interval:
    return Interval(m["mean"], m["lo"], m["hi"])


def load_policies(params: Params, root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows, seeds = [], []
    for i, p in enumerate(policy_order(params)):
        f = root / paths.eval_metrics(p)
        if not f.exists():
            continue
        m = json.loads(f.read_text())
        if "skipped" in m:  # a control that is off (onpolicy_control.enabled)
            continue
        row: dict[str, Any] = {
            "policy": p,
            "step": i,
            "judge": m.get("judge") or params.evaluate.judge,
        }
        for key, _ in (*METRICS, *DISTANCE):
            if m.get(key) is None:  # made before the metric existed, or no RM to score with
                if key in ("gold_mean", "gold_gain_vs_sft"):  # a pairwise judge: no pointwise score
                    row.update(
                        {key: float("nan"), f"{key}_lo": float("nan"), f"{key}_hi": float("nan")}
                    )
                continue
            iv = _interval(m[key])
            row.update({key: iv.mean, f"{key}_lo": iv.lo, f"{key}_hi": iv.hi})
        for c in SECTIONS:
            row[f"correctness_{c}"] = m["correctness"].get(c)
        rows.append(row)
        for s, v in m.get("by_seed", {}).items():
            seeds.append({"policy": p, "seed": int(s), **v})
    return pl.DataFrame(rows), pl.DataFrame(seeds)


def collect(params: Params, root: Path = Path(".")) -> ReportData:
    cfg = params.report
    con = connect()
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
        table1=table1_stats(views["preferences"], con) if "preferences" in views else [],
        ablations=abl_runs,
        ablations_note=abl_note,
        length_unit=", ".join(
            u for (u,) in con.sql("SELECT DISTINCT length_unit FROM scored ORDER BY 1").fetchall()
        )
        if "scored" in views
        else "",
        judge=recorded_judge(policies, params),
    )
    if have_loop:
        data.onpolicy = analytics.onpolicy_diagnostics(con)
    data.kl_rounds = kl_rounds(params, root, per_seed)
    data.curves = load_curves(root / paths.CURVES_DIR)
    if "evaluations" in views:
        data.samples = sample_completions(con, policy_order(params))
    return data


def load_curves(root: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every training run's DVCLive series under `root` (<run>/plots/metrics/<metric>.tsv)."""
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for tsv in sorted(root.glob("**/plots/metrics/**/*.tsv")):
        run_dir, _, metric = tsv.relative_to(root).as_posix().partition("/plots/metrics/")
        rows = pl.read_csv(tsv, separator="\t")
        out.setdefault(run_dir, {})[metric.removesuffix(".tsv")] = list(
            zip(
                rows["step"].to_list(),
                rows[rows.columns[-1]].cast(pl.Float64).to_list(),
                strict=True,
            )
        )
    return out


def sample_completions(con, policies: list[str]) -> pl.DataFrame:
    """Per category, the evaluation prompt on which the policies' first samples (first seed)
    differ most in gold reward (ties: the prompt id that sorts first), and each policy's
    sample of it: the same prompt for every policy, so the rows read side by side."""
    order = {p: i for i, p in enumerate(policies)}
    df = con.sql(
        """
        SELECT category, prompt_id, prompt, policy, response, gold FROM evaluations
        WHERE seed = (SELECT min(seed) FROM evaluations) AND sample_idx = 0
        """
    ).pl()
    df = df.filter(pl.col("policy").is_in(policies))
    spread = (
        df.group_by("category", "prompt_id")
        .agg((pl.col("gold").max() - pl.col("gold").min()).alias("spread"))
        .sort(["category", "spread", "prompt_id"], descending=[False, True, False])
        .group_by("category", maintain_order=True)
        .first()
        .select("category", "prompt_id")
    )
    return (
        df.join(spread, on=["category", "prompt_id"])
        .with_columns(pl.col("policy").replace_strict(order).alias("_o"))
        .sort("category", "_o")
        .drop("_o")
    )


def kl_rounds(params: Params, root: Path, per_seed: pl.DataFrame) -> list[dict[str, Any]]:
    """Each budgeted round's record (its dpo.json, rlhf/online/kl_budget.py) per seed, with the
    KL of the policy it made as the evaluation measured it on the eval prompts."""
    evals = {
        (r["policy"], r["seed"]): r.get("kl_to_sft")
        for r in (per_seed.to_dicts() if per_seed.height else [])
    }
    rows = []
    for it in params.iterations:
        f = root / paths.iteration_dir(it) / "dpo.json"
        if not f.exists():
            continue
        for s, m in json.loads(f.read_text()).get("by_seed", {}).items():
            if m.get("kl_budget") is None:
                continue
            rows.append(
                {
                    "iteration": it,
                    "seed": int(s),
                    "budget": m["kl_budget"],
                    "reached": m["kl_reached"],
                    "steps": m["steps"],
                    "stopped": m["kl_stopped"],
                    "eval_kl": evals.get((it, int(s))),
                }
            )
    return rows


def fmt(row: dict[str, Any], key: str, digits: int = 3) -> str:
    """`row[key]` with its interval columns `key_lo`, `key_hi`: "0.512 [0.501, 0.525]"."""
    return f"{row[key]:.{digits}f} [{row[key + '_lo']:.{digits}f}, {row[key + '_hi']:.{digits}f}]"


def fmt_iv(iv: dict[str, float], digits: int = 3) -> str:
    """An interval dict {mean, lo, hi} as "0.512 [0.501, 0.525]"."""
    return f"{iv['mean']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"
