from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

# Small enough for seconds, large enough that every defect kind and filter appears.
SMALL_WORLD = {
    "prompt_pool_size": 1500,
    "demonstrations": 200,
    "sizes": {
        "hh": 300,
        "ultrafeedback": 120,
        "helpsteer": 120,
        "shp": 60,
        "pku_safe": 120,
        "ultrainteract": 120,
    },
}
SMALL_PROMPTS = {"eval_size": 40, "slice_size": 40, "n_slices": 4}
# The on-policy control on a slice no iteration of a small run uses (the default three use 1-3).
# On in the tests (off by default for its minutes): the pipeline tests cover the control.
SMALL_CONTROL = {"enabled": True, "prompt_splits": ["train_4"]}
# The whole loop shrunk to seconds per stage: a 2-layer, 64-wide model and one iteration.
SMALL_LOOP = {
    # Twice the preference data of SMALL_WORLD: the reward model needs it to beat chance
    # reliably (measured over seeds 0-3: held-out accuracy 0.51-0.66 with 1x, 0.56-0.60 with 2x).
    "world": {**SMALL_WORLD, "sizes": {k: 2 * v for k, v in SMALL_WORLD["sizes"].items()}},
    "prompts": SMALL_PROMPTS,
    "onpolicy_control": SMALL_CONTROL,
    "base": {
        "vocab_size": 320,
        "hidden_size": 64,
        "layers": 2,
        "heads": 2,
        "train": {"epochs": 2.0, "lr": 0.003, "batch_size": 32},
    },
    "sft": {"train": {"epochs": 3.0, "lr": 0.002, "batch_size": 16}},
    # Two members: the ensemble path (training, scoring, rm_eval per member) end to end.
    "reward_model": {
        "max_pairs": 0,
        "ensemble": 2,
        "train": {"epochs": 2.0, "lr": 0.001, "batch_size": 16},
    },
    "preference_model": {
        "max_pairs": 400,
        "train": {"epochs": 1.0, "lr": 0.001, "batch_size": 16, "max_length": 256},
    },
    "rm_eval": {"pairs_per_prompt": 12, "samples_per_prompt": 4, "round_robin_prompts": 4},
    "generate": {"n": 4, "max_new_tokens": 24},
    "dpo": {"train": {"epochs": 1.0, "lr": 0.0005, "batch_size": 8}},
    "evaluate": {
        "samples_per_prompt": 1,
        "max_new_tokens": 24,
        "bootstrap": 200,
        "llm": {"max_new_tokens": 4},
    },
    "report": {"bootstrap": 200},
    # Two replicates: enough to exercise per-seed models, tables and intervals.
    "seeds": [0, 1],
    "iterations": {
        "iter_1": {"policy_in": "models/sft", "prompt_split": "train_1", "previous": "iter_0"}
    },
}


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is: elsewhere they are skipped, with the reason shown."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (pytest -m gpu on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def deep_update(d: dict, u: dict) -> dict:
    for k, v in u.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            deep_update(d[k], v)
        else:
            d[k] = v
    return d


def make_project(dest: Path, overrides: dict | None = None) -> Path:
    """A fresh git+DVC checkout of the tracked project files, with params overridden."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for f in files:
        src = REPO / f
        # Outputs stay behind; reports/ablations.json (collected experiments) and data/external/
        # (users' real datasets) are inputs.
        output = f.startswith(("data/", "reports/")) and not (
            f == "reports/ablations.json" or f.startswith("data/external/")
        )
        if not src.is_file() or output or f == "dvc.lock":
            continue
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / f)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deep_update(params, overrides or {})
    if overrides and "iterations" in overrides:  # replaced whole, not merged
        params["iterations"] = overrides["iterations"]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env)
    return dest


def run_rlhf(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The `rlhf` command on the project at `root` (`--root`), with this interpreter's `dvc`."""
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "rlhf.cli", *args, "--root", str(root)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )


def run_dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # Stage commands call `python`: make it this interpreter, activated venv or not.
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(bindir / "dvc"), *args], cwd=cwd, capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """The whole loop, shrunk (SMALL_LOOP), reproduced once by the real `dvc repro` in a fresh
    git checkout; shared by the end-to-end modules (tests that need it unchanged copy it)."""
    project = make_project(tmp_path_factory.mktemp("loop"), SMALL_LOOP)
    r = run_dvc(project, "repro")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return project


@pytest.fixture
def small_params():
    from rlhf.core.config import parse_params

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deep_update(
        params, {"world": SMALL_WORLD, "prompts": SMALL_PROMPTS, "onpolicy_control": SMALL_CONTROL}
    )
    return parse_params(params)


def scored_rows(iteration, groups, prompt, seed=0):
    """Rows of the `scored` table for hand-built tests. groups: prompt_id -> [(response, reward)]."""
    return [
        {
            "iteration": iteration,
            "seed": seed,
            "prompt_id": pid,
            "sample_idx": k,
            "prompt": prompt,
            "response": text,
            "n_tokens": len(text.split()),
            "finish_reason": "stop",
            "policy": "p",
            "backend": "hf",
            "sampling_seed": 0,
            "temperature": 1.0,
            "top_p": 1.0,
            "top_k": 0,
            "max_new_tokens": 8,
            "stop": "<|im_end|>",
            "reward": reward,
            "length": len(text),
            "length_unit": "chars",
            "length_penalty": 0.0,
            "penalized_reward": reward,
        }
        for pid, samples in groups.items()
        for k, (text, reward) in enumerate(samples)
    ]
