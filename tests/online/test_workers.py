"""Stages at scale, checked on CPU through the real `dvc repro` (issue: sharded, resumable,
data-parallel): a generate stage killed mid-way resumes from its finished shards and writes what
an uninterrupted run writes; two worker processes write the same tables as one; the training
stages run as two processes (DDP over gloo), rank 0 alone writing."""

import hashlib
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ..conftest import SMALL_LOOP, deep_update, run_dvc

pytestmark = pytest.mark.slow
TWO_CPU_WORKERS = "torchrun --standalone --nproc_per_node 2"
GENERATIONS = Path("data/iterations/iter_1/generations.parquet")
SCORED = Path("data/iterations/iter_1/scored.parquet")


@pytest.fixture
def copy(project, tmp_path):
    """A copy of the finished small run (its git repo and DVC cache included) to change."""
    dest = tmp_path / "run"
    shutil.copytree(project, dest, symlinks=True)
    return dest


def set_params(root: Path, updates: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(deep_update(params, updates), sort_keys=False))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([\w@-]+)'", stdout))


def test_a_killed_generate_stage_resumes_from_its_finished_shards(copy):
    # One batch per shard, so the stage has many shards to be killed among.
    set_params(copy, {"generate": {"batch_prompts": 4, "shard_prompts": 4}})
    stage, out = "generate@iter_1", copy / GENERATIONS
    r = run_dvc(copy, "repro", "-s", stage)
    assert r.returncode == 0, r.stderr[-3000:]
    clean = md5(out)
    shards = copy / ".rlhf/shards" / stage
    assert not shards.exists()  # cleared once the output was written

    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [str(bindir / "dvc"), "repro", "-f", "-s", stage],
        cwd=copy,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while len(list(shards.rglob("shard-*.json"))) < 3:
        assert proc.poll() is None, "the stage ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage process with it
    proc.wait()
    finished = len(list(shards.rglob("shard-*.json")))
    total = len(SMALL_LOOP["seeds"]) * math.ceil(SMALL_LOOP["prompts"]["slice_size"] / 4)
    assert 3 <= finished < total
    assert not out.exists()  # no partial table under the output path

    again = run_dvc(copy, "repro", "-f", "-s", stage)  # -f: not from the run-cache
    assert again.returncode == 0, again.stderr[-3000:]
    reused = re.findall(r"reusing (\d+) of (\d+) finished shards", again.stdout)
    assert sum(int(n) for n, _ in reused) == finished, again.stdout
    assert md5(out) == clean
    assert not shards.exists()


def test_two_worker_processes_write_the_same_samples_and_scores_as_one(copy):
    before = {p: md5(copy / p) for p in (GENERATIONS, SCORED)}
    # Shards of one batch each (the batches of the one-worker run), so both workers get some.
    set_params(
        copy,
        {
            "generate": {"shard_prompts": 32},
            "score": {"shard_rows": 64},
            "compute": {"sample_launcher": TWO_CPU_WORKERS},
        },
    )
    r = run_dvc(copy, "repro", "-s", "generate@iter_1", "score@iter_1")
    assert r.returncode == 0, r.stderr[-3000:]
    assert ran(r.stdout) == {"generate@iter_1", "score@iter_1"}, r.stdout
    assert "shards (worker 1)" in r.stderr  # the second process took shards of its own
    assert {p: md5(copy / p) for p in before} == before


def test_training_stages_run_as_two_processes_and_rank_0_alone_writes(copy):
    from safetensors.torch import load_file

    from rlhf.models.checkpoints import load_policy, load_reward_model, load_tokenizer

    train = copy / "reports/train"
    steps_one = {m: yaml.safe_load((train / f"{m}.json").read_text()) for m in ("sft",)}
    # One thread per process: two processes of two threads on two cores only fight (measured:
    # 269 s for this test). One RM, one seed: the three trainer kinds are what is tested here.
    set_params(
        copy,
        {
            "compute": {"launcher": TWO_CPU_WORKERS, "threads": 1},
            "reward_model": {"ensemble": 1},
            "seeds": [0],
        },
    )
    stages = ("sft", "reward_model", "dpo@iter_1")
    r = run_dvc(copy, "repro", "-s", *stages)
    assert r.returncode == 0, r.stderr[-3000:]
    assert ran(r.stdout) == set(stages), r.stdout
    # Data parallel: each process took half of the examples, so about half the steps (each
    # epoch's last, partial batch rounds up).
    sft = yaml.safe_load((train / "sft.json").read_text())
    assert sft["steps"] < 0.6 * steps_one["sft"]["steps"], (sft, steps_one)

    def weights(d):
        return load_file(copy / d / "model.safetensors")

    def differs(a, b):
        wa, wb = weights(a), weights(b)
        return any(not (wa[k] == wb[k]).all() for k in wa)

    assert differs("models/sft", "models/base")
    assert differs("models/iter_1/seed_0", "models/sft")
    load_policy(copy / "models/iter_1/seed_0")
    tok = load_tokenizer(copy / "models/sft")
    load_reward_model(copy / "models/reward_model", tok.pad_token_id)
    # One writer: no scratch or half-written folder of another rank anywhere in the run.
    assert not list((copy / "models").rglob("*.tmp-*"))
    assert not list((copy / "data").rglob("*.tmp-*"))
