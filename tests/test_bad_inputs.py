"""Bad inputs to the `rlhf` command (issue 28): each case ends in its exit code and one line
with a remedy, never a traceback, and no byte of an existing output changes.

`rlhf sql` runs on hand-built tables; `rlhf verify` / `rlhf share` on a two-stage DVC project of
shell commands (seconds, no model), with a directory remote."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import REPO
from .conftest import run_rlhf as rlhf

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def snapshot(root: Path, *subs: str) -> dict[str, bytes]:
    """Every file's bytes under the given folders (or files) of `root`."""
    out = {}
    for sub in subs:
        p = root / sub
        files = [p] if p.is_file() else sorted(p.rglob("*")) if p.exists() else []
        for f in files:
            if f.is_file():
                out[f.relative_to(root).as_posix()] = f.read_bytes()
    return out


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a failed command; no traceback anywhere."""
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


# ------------------------------------------------------------------------------------------
# rlhf sql
# ------------------------------------------------------------------------------------------


@pytest.fixture
def tables(tmp_path):
    """A project with one iteration's pairs and the mix: the other views do not exist yet."""
    root = tmp_path / "proj"
    pq.write_table(
        pa.table({"iteration": ["iter_1", "iter_1"], "chosen_length": [3, 5]}),
        _mk(root / "data/iterations/iter_1/pairs.parquet"),
    )
    pq.write_table(pa.table({"source": ["hh"]}), _mk(root / "data/mix/preferences.parquet"))
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    return root


def _mk(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def test_sql_on_a_table_not_made_yet_names_its_stage_and_the_remedy(tables):
    before = snapshot(tables, "data")
    r = rlhf(tables, "sql", "SELECT count(*) FROM scored")
    assert r.returncode == 1
    line = one_line_error(r)
    assert "no table 'scored' yet" in line
    assert "made by stage score: run `dvc repro score` or `rlhf share pull --datasets`" in line
    assert "pg_sequences" not in r.stderr
    # An uncached output (git-tracked metrics) is made again, not pulled.
    r = rlhf(tables, "sql", "SELECT * FROM rm_eval")
    assert "made by stage rm_eval: run `dvc repro rm_eval`" in one_line_error(r)
    assert "share pull" not in r.stderr
    # A name no stage makes: the views there.
    r = rlhf(tables, "sql", "SELECT * FROM nosuch")
    assert "no table 'nosuch'; the views here: pairs, preferences" in one_line_error(r)
    assert snapshot(tables, "data") == before


def test_sql_is_read_only_unless_allow_writes(tables, tmp_path):
    before = snapshot(tables, "data")
    target = tmp_path / "x.csv"
    inside = tables / "data/mix/preferences.parquet"
    refused = {
        f"COPY (SELECT 1) TO '{target}'": "COPY refused",
        f"COPY (SELECT 42 AS source) TO '{inside}' (FORMAT parquet)": "COPY refused",
        f"ATTACH '{tmp_path / 'new.duckdb'}'": "ATTACH refused",
        "INSTALL httpfs": "INSTALL refused",
        "SELECT * FROM read_text('/etc/passwd')": "reads only the project's",
        "SET enable_external_access = true": "",
        "SET allowed_directories = ['/']": "",
    }
    for q, says in refused.items():
        r = rlhf(tables, "sql", q)
        assert r.returncode == 1, (q, r.stdout)
        assert says in one_line_error(r), (q, r.stderr)
        assert "root:" not in r.stdout  # nothing of /etc/passwd
    assert not target.exists() and not (tmp_path / "new.duckdb").exists()
    assert snapshot(tables, "data") == before
    # The views still read the project's Parquet through the restriction.
    r = rlhf(tables, "sql", "SELECT sum(chosen_length) AS n FROM pairs", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["n", "8"]
    # --allow-writes: DuckDB's own connection.
    r = rlhf(tables, "sql", f"COPY (SELECT 1 AS one) TO '{target}'", "--allow-writes")
    assert r.returncode == 0, r.stderr
    assert target.read_text().split() == ["one", "1"]


def test_sql_with_a_broken_params_yaml_is_one_line(tables):
    (tables / "params.yaml").write_text("iterations: [unclosed\n")
    r = rlhf(tables, "sql", "SELECT 1")
    assert r.returncode == 2
    line = one_line_error(r)
    assert "params.yaml" in line and "--all-iterations" in line
    ok = rlhf(tables, "sql", "SELECT count(*) AS n FROM pairs", "--all-iterations")
    assert ok.returncode == 0, ok.stderr
