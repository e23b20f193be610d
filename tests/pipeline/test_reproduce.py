"""`rlhf reproduce --check` against a tiny git+DVC project of its own (real DVC, no mocks):
four plain-python stages, one of whose outputs follows an environment variable (NOISE) and a
metrics file in the shape of reports/eval/<policy>.json whose mean follows another (SHIFT)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf import reproduce
from rlhf.core.datafiles import UsageError

from ..conftest import REPO

STEP = """
import json, os, sys

name = sys.argv[1]
if os.environ.get("COUNTER"):
    with open(os.environ["COUNTER"], "a") as f:
        f.write(name + "\\n")
os.makedirs("data", exist_ok=True)
if name == "up":
    open("data/a.txt", "w").write("hello\\n")
elif name == "down":
    open("data/b.txt", "w").write(open("data/a.txt").read().upper())
elif name == "noisy":
    os.makedirs("data/noisy", exist_ok=True)
    open("data/noisy/c.txt", "w").write(os.environ.get("NOISE", "0"))
    open("data/noisy/d.txt", "w").write("fixed")
elif name == "evaluate_x":
    mean = round(0.55 + float(os.environ.get("SHIFT", "0")), 4)
    doc = {
        "n": 10,
        "win_rate_vs_sft": {"hi": 0.57, "lo": 0.53, "mean": mean},
        "gold_gain_vs_sft": {"hi": 0.03, "lo": 0.01, "mean": 0.02},
        "by_seed": {"0": {"win_rate_vs_sft": mean}},
    }
    os.makedirs("reports/eval", exist_ok=True)
    with open("reports/eval/x.json", "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
"""

DVC_YAML = """stages:
  up:
    cmd: python step.py up
    deps: [step.py]
    outs: [data/a.txt]
  down:
    cmd: python step.py down
    deps: [step.py, data/a.txt]
    outs: [data/b.txt]
  noisy:
    cmd: python step.py noisy
    deps: [step.py]
    outs: [data/noisy]
  evaluate_x:
    cmd: python step.py evaluate_x
    deps: [step.py, data/b.txt]
    metrics:
    - reports/eval/x.json:
        cache: false
"""

ENV_VARS = ("COUNTER", "NOISE", "SHIFT")


def _env() -> dict[str, str]:
    bindir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return env


def _run(root: Path, *cmd: str) -> None:
    r = subprocess.run(cmd, cwd=root, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    (root / "step.py").write_text(STEP)
    (root / "dvc.yaml").write_text(DVC_YAML)
    _run(root, "git", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "init", "-q")
    _run(root, sys.executable, "-m", "dvc", "repro", "-q")
    _run(root, "git", "add", "-A")
    _run(root, "git", "commit", "-qm", "committed lock")
    return root


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for k in ENV_VARS:
        monkeypatch.delenv(k, raising=False)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file of the project but .git, by content (the DVC cache included)."""
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    }


def _verdicts(res: reproduce.Result) -> dict[str, str]:
    return {o.path: o.verdict for o in res.outputs}


def _check(project: Path, *stages: str, **kw) -> reproduce.Result:
    return reproduce.check(project, stages, log=lambda _line: None, **kw)


def test_all_identical_exit_0_through_the_cli(project, tmp_path):
    before = _snapshot(project)
    counter = tmp_path / "counter"
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", "reproduce", "--check", "--root", str(project)],
        cwd=REPO,
        env={**_env(), "COUNTER": str(counter)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 of 4 outputs identical" in r.stdout
    assert "[1/4]" in r.stderr  # progress, one line per stage as it starts
    # Everything really ran (a cache of its own: nothing restored from the user's).
    assert sorted(counter.read_text().split()) == ["down", "evaluate_x", "noisy", "up"]
    assert _snapshot(project) == before


def test_a_nondeterministic_stage_differs_exit_1(project, monkeypatch):
    before = _snapshot(project)
    monkeypatch.setenv("NOISE", "1")
    res = _check(project)
    assert _verdicts(res) == {
        "data/a.txt": "identical",
        "data/b.txt": "identical",
        "data/noisy": "differs",
        "reports/eval/x.json": "identical",
    }
    assert next(o for o in res.outputs if o.path == "data/noisy").files == ("c.txt",)
    assert res.exit_code == reproduce.EXIT_WITHIN_NOISE
    assert "3 of 4 outputs identical (1 differs)" in reproduce.format_report(res)
    assert _snapshot(project) == before


def test_a_metric_outside_its_interval_exit_3(project, monkeypatch):
    monkeypatch.setenv("SHIFT", "0.1")
    res = _check(project)
    assert _verdicts(res)["reports/eval/x.json"] == "differs"
    assert [(m.name, m.found, m.inside) for m in res.metrics] == [("win_rate_vs_sft", 0.65, False)]
    assert res.exit_code == reproduce.EXIT_OUTSIDE
    text = reproduce.format_report(res)
    assert "reports/eval/x.json win_rate_vs_sft: 0.55 [0.53, 0.57] -> 0.65" in text
    assert "OUTSIDE" in text


def test_a_metric_inside_its_interval_exit_1(project, monkeypatch):
    monkeypatch.setenv("SHIFT", "0.005")
    res = _check(project)
    assert [(m.name, m.inside) for m in res.metrics] == [("win_rate_vs_sft", True)]
    assert res.exit_code == reproduce.EXIT_WITHIN_NOISE
    assert "within noise" in reproduce.format_report(res)


def test_named_stages_only_rerun_with_upstream_from_the_cache(project, tmp_path, monkeypatch):
    before = _snapshot(project)
    counter = tmp_path / "counter"
    monkeypatch.setenv("COUNTER", str(counter))
    logged: list[str] = []
    res = reproduce.check(project, ["evaluate_x", "down"], log=logged.append)
    assert counter.read_text().split() == ["down", "evaluate_x"]  # upstream order, `up` not run
    assert _verdicts(res) == {"data/b.txt": "identical", "reports/eval/x.json": "identical"}
    assert res.exit_code == reproduce.EXIT_IDENTICAL
    assert any(line.startswith("input data/a.txt (from up): DVC cache") for line in logged)
    assert _snapshot(project) == before


def test_uncommitted_edits_are_copied_untracked_files_are_not(project, tmp_path):
    step = project / "step.py"
    (project / "notes.txt").write_text("untracked")
    step.write_text(STEP.replace('"hello\\n"', '"HELLO\\n"'))
    try:
        logged: list[str] = []
        res = reproduce.check(project, ["up"], log=logged.append, keep=True, workdir=tmp_path / "s")
        assert _verdicts(res) == {"data/a.txt": "differs"}
        assert res.exit_code == reproduce.EXIT_WITHIN_NOISE
        assert not (res.scratch / "notes.txt").exists()
        assert any("1 untracked files" in line and "notes.txt" in line for line in logged)
    finally:
        step.write_text(STEP)
        (project / "notes.txt").unlink()


def test_a_failing_stage_exit_3(project, monkeypatch):
    monkeypatch.setenv("COUNTER", "/nonexistent-dir/counter")  # every stage fails to open it
    res = _check(project, "up")
    assert res.failed and "up" in res.failed
    assert _verdicts(res) == {"data/a.txt": "missing"}
    assert res.exit_code == reproduce.EXIT_OUTSIDE


def test_bad_stage_name_exit_2_one_line(project):
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", "reproduce", "--check", "nope", "--root", str(project)],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error: no stage 'nope' in dvc.lock; known: ")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_workdir_rules(project, tmp_path):
    with pytest.raises(UsageError, match="inside the project"):
        _check(project, "up", workdir=project / "scratch")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(UsageError, match="not an empty directory"):
        _check(project, "up", workdir=full)
    kept = _check(project, "up", workdir=tmp_path / "new", keep=True)
    assert kept.scratch == tmp_path / "new" and (kept.scratch / "data" / "a.txt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _check(project, "up", workdir=empty).exit_code == 0
    assert empty.is_dir() and not any(empty.iterdir())
