"""The one place that knows where every table, model and report lives (relative to the repo root).

dvc.yaml names the same paths in its deps/outs; tests/pipeline/test_pipeline_files.py checks they agree.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

WORLD_DIR = Path("data/world")
PROMPT_POOL = WORLD_DIR / "prompt_pool.parquet"
DEMONSTRATIONS = WORLD_DIR / "demonstrations.parquet"


def raw_source(world_dir: Path, source: str) -> Path:
    """A simulated source in its native shape."""
    return Path(world_dir) / "raw" / f"{source}.parquet"


MIX_DIR = Path("data/mix")
PREFERENCES = MIX_DIR / "preferences.parquet"
QUARANTINE = MIX_DIR / "quarantine.parquet"

PROMPTS_DIR = Path("data/prompts")
PROMPTS = PROMPTS_DIR / "prompts.parquet"
PROMPTS_QUARANTINE = PROMPTS_DIR / "quarantine.parquet"  # unusable rows of external sources
EXTERNAL_DIR = Path(
    "data/external"
)  # users' real datasets; the mix and prompts stages depend on it

REPORTS_DIR = Path("reports")
MIX_FILTER_REPORT = REPORTS_DIR / "mix" / "filter_report.json"
MIX_TABLE1_JSON = REPORTS_DIR / "mix" / "table1.json"
MIX_TABLE1_MD = REPORTS_DIR / "mix" / "table1.md"
PROMPT_SPLITS_JSON = REPORTS_DIR / "prompts" / "splits.json"

MODELS_DIR = Path("models")
BASE_MODEL = MODELS_DIR / "base"
SFT_MODEL = MODELS_DIR / "sft"
REWARD_MODEL = MODELS_DIR / "reward_model"
PREFERENCE_MODEL = MODELS_DIR / "preference_model"
OFFLINE_DPO_MODEL = MODELS_DIR / "offline_dpo"
ONPOLICY_DPO_MODEL = MODELS_DIR / "onpolicy_dpo"
# Policies evaluated beside the iterations, in report order: SFT, the paper's offline-DPO
# baseline and the on-policy offline control.
BASELINE_POLICIES = ("sft", "offline_dpo", "onpolicy_dpo")
# The on-policy offline control's samples and pairs: outside ITERATIONS_DIR, so that the
# iteration views (rlhf sql, the report) never mix them in.
CONTROL_DIR = Path("data/control/onpolicy")
ITERATIONS_DIR = Path("data/iterations")
EVAL_DIR = Path("data/eval")
HISTORY_START = ITERATIONS_DIR / "iter_0" / "train_pairs.parquet"


def iteration_dir(name: str) -> Path:
    return ITERATIONS_DIR / name


def replicate(model_dir: str | Path, seed: int) -> Path:
    """The seed-`seed` replicate of a policy: `<dir>/seed_<seed>` when the policy is replicated
    (iterations, offline DPO), else the shared model itself (SFT, or any given checkpoint)."""
    sub = Path(model_dir) / f"seed_{seed}"
    return sub if sub.is_dir() else Path(model_dir)


def replicate_out(model_dir: str | Path, seed: int) -> Path:
    """Where a replicated stage writes its seed-`seed` model."""
    return Path(model_dir) / f"seed_{seed}"


def eval_table(policy: str) -> Path:
    return EVAL_DIR / f"{policy}.parquet"


def eval_metrics(policy: str) -> Path:
    return REPORTS_DIR / "eval" / f"{policy}.json"


# Globs over every iteration's tables, for analytics (rlhf sql, the report).
GLOBS = {
    "generations": str(ITERATIONS_DIR / "*" / "generations.parquet"),
    "scored": str(ITERATIONS_DIR / "*" / "scored.parquet"),
    "pairs": str(ITERATIONS_DIR / "*" / "pairs.parquet"),
    "train_pairs": str(ITERATIONS_DIR / "*" / "train_pairs.parquet"),
    "evaluations": str(EVAL_DIR / "*.parquet"),
}
SCORED_GOLD = Path("data/report/scored_gold.parquet")  # gold scores of generations (analysis only)
REPORT_HTML = REPORTS_DIR / "report.html"
REPORT_MD = REPORTS_DIR / "report.md"
REPORT_SUMMARY_MD = REPORTS_DIR / "summary.md"  # the README's results block
FIGURES_DIR = REPORTS_DIR / "figures"
PLOTS_DIR = REPORTS_DIR / "plots"  # CSV series for `dvc plots show/diff`
ABLATIONS = REPORTS_DIR / "ablations.json"
RM_EVAL = REPORTS_DIR / "rm_eval.json"

CURVES_DIR = REPORTS_DIR / "curves"  # DVCLive training curves (rlhf.models.curves)


def curves(stage: str) -> Path:
    """A training stage's DVCLive folder (a replicated stage: one `seed_<s>` folder per seed)."""
    return CURVES_DIR / stage


TIMINGS_DIR = REPORTS_DIR / "timings"  # git-ignored: wall times differ on every run
# Finished shards of an unfinished stage (rlhf.core.shards), git-ignored: a stage's cache.
SHARDS_DIR = Path(".rlhf/shards")


def shards(stage: str) -> Path:
    """Where a stage keeps its finished shards until its output is written."""
    return SHARDS_DIR / stage


def timing(stage: str) -> Path:
    return TIMINGS_DIR / f"{stage}.json"
