"""End to end: the real `dvc repro` on a shrunken params override, in fresh git checkouts."""

import re
import subprocess

import pytest
import yaml

from rlhf import paths
from rlhf.schemas import read_table

from .conftest import REPO, SMALL_PROMPTS, SMALL_WORLD, make_project, run_dvc

pytestmark = pytest.mark.slow
SMALL = {"world": SMALL_WORLD, "prompts": SMALL_PROMPTS}


def lock_hashes(project):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        (stage, o["path"]): o["md5"]
        for stage, body in lock["stages"].items()
        for o in body.get("outs", [])
    }


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory):
    out = []
    for name in ("a", "b"):
        project = make_project(tmp_path_factory.mktemp(name), SMALL)
        r = run_dvc(project, "repro")
        assert r.returncode == 0, r.stdout + r.stderr
        out.append(project)
    return out


def test_repro_builds_every_stage_and_a_second_repro_runs_nothing(two_projects):
    project = two_projects[0]
    for p in (
        paths.PREFERENCES,
        paths.QUARANTINE,
        paths.PROMPTS,
        paths.PROMPT_POOL,
        paths.MIX_TABLE1_MD,
    ):
        assert (project / p).exists(), p
    prefs = read_table("preferences", project / paths.PREFERENCES)
    assert prefs.num_rows > 0
    again = run_dvc(project, "repro")
    assert again.returncode == 0
    assert "Running stage" not in again.stdout, again.stdout
    status = run_dvc(project, "status")
    assert "up to date" in status.stdout


def test_separate_runs_give_byte_identical_outputs(two_projects):
    a, b = (lock_hashes(p) for p in two_projects)
    assert a and a == b


def test_metrics_are_visible_to_dvc(two_projects):
    r = run_dvc(two_projects[0], "metrics", "show", "--json")
    assert r.returncode == 0, r.stderr
    assert "kept_pairs" in r.stdout and "n_pairs" in r.stdout


def test_params_change_reruns_only_the_stages_that_read_it(two_projects):
    project = two_projects[0]
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["prompts"]["seed"] = 7
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    r = run_dvc(project, "repro")
    assert r.returncode == 0, r.stderr
    ran = set(re.findall(r"Running stage '([\w@-]+)'", r.stdout))
    assert ran == {"prompts"}, r.stdout
    diff = run_dvc(project, "params", "diff")
    assert "prompts.seed" in diff.stdout


def test_bad_params_fail_with_the_key_named(tmp_path):
    project = make_project(tmp_path, {**SMALL, "mix": {"filters": {"shp": {"min_ratio": 0}}}})
    r = run_dvc(project, "repro", "mix")
    assert r.returncode != 0
    assert "mix.filters.shp.min_ratio: must be >= 1.0, got 0" in r.stdout + r.stderr


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)\n(.+?)\n```", readme, re.S)
    assert m, "README must mark its test command with <!-- test-command -->"
    assert m.group(1).strip() in ci
    assert subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")]).returncode == 0
