"""The one place that knows where every table, model and report lives (relative to the repo root).

dvc.yaml names the same paths in its deps/outs; tests/test_pipeline_files.py checks they agree.
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

REPORTS_DIR = Path("reports")
MIX_FILTER_REPORT = REPORTS_DIR / "mix" / "filter_report.json"
MIX_TABLE1_JSON = REPORTS_DIR / "mix" / "table1.json"
MIX_TABLE1_MD = REPORTS_DIR / "mix" / "table1.md"
PROMPT_SPLITS_JSON = REPORTS_DIR / "prompts" / "splits.json"

MODELS_DIR = Path("models")
BASE_MODEL = MODELS_DIR / "base"
SFT_MODEL = MODELS_DIR / "sft"
REWARD_MODEL = MODELS_DIR / "reward_model"
OFFLINE_DPO_MODEL = MODELS_DIR / "offline_dpo"
ITERATIONS_DIR = Path("data/iterations")
EVAL_DIR = Path("data/eval")
HISTORY_START = ITERATIONS_DIR / "iter_0" / "train_pairs.parquet"


def iteration_dir(name: str) -> Path:
    return ITERATIONS_DIR / name


def eval_table(policy: str) -> Path:
    return EVAL_DIR / f"{policy}.parquet"


def eval_metrics(policy: str) -> Path:
    return REPORTS_DIR / "eval" / f"{policy}.json"


TIMINGS_DIR = REPORTS_DIR / "timings"  # git-ignored: wall times differ on every run


def timing(stage: str) -> Path:
    return TIMINGS_DIR / f"{stage}.json"
