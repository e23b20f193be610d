"""Bad inputs to the `rlhf` command (issue 28): each case ends in its exit code and one line
with a remedy, never a traceback, and no byte of an existing output changes.

`rlhf sql` runs on hand-built tables; `rlhf verify` / `rlhf share` on a two-stage DVC project of
shell commands (seconds, no model), with a directory remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ..conftest import REPO, run_dvc
from ..conftest import run_rlhf as rlhf

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


# ------------------------------------------------------------------------------------------
# rlhf verify / rlhf share on a small DVC project
# ------------------------------------------------------------------------------------------

DVC_YAML = {
    "stages": {
        "one": {"cmd": "echo one-one-one > one.txt", "outs": ["one.txt"]},
        "two": {
            "cmd": "mkdir -p two && echo two-two-two > two/a.txt && echo 2 > two/b.txt",
            "outs": ["two"],
        },
        "note": {
            "cmd": "echo '{\"n\": 1}' > note.json",
            "metrics": [{"note.json": {"cache": False}}],
        },
    }
}
OUTPUTS = ("one.txt", "two", "note.json")


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, env=GIT_ENV)


@pytest.fixture
def small(tmp_path):
    """A git+DVC project whose three stages ran, with a committed directory remote."""
    root = tmp_path / "small"
    root.mkdir()
    git(root, "init", "-q")
    assert run_dvc(root, "init", "-q").returncode == 0
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML))
    r = run_dvc(root, "repro")
    assert r.returncode == 0, r.stderr
    assert run_dvc(root, "remote", "add", "-d", "store", str(tmp_path / "store")).returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "ran")
    return root


def flip(p: Path) -> None:
    """Change one byte, keeping size and mtime (DVC does not notice)."""
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[0] ^= 0x01
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verify_and_share_outside_a_dvc_project_are_one_line(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for args in (("verify",), ("verify", "--present"), ("share", "push", "--all")):
        r = rlhf(plain, *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "is not in a DVC project" in one_line_error(r)


def test_verify_present_lists_missing_apart_and_prints_a_repair_that_works(small):
    (small / "one.txt").unlink()
    r = rlhf(small, "verify")
    assert r.returncode == 1
    assert "one.txt: expected" in r.stdout and "1 missing" in r.stderr
    assert "rlhf verify --present" in r.stderr
    r = rlhf(small, "verify", "--present")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not in the workspace, not checked (1): one.txt" in r.stderr
    assert "2 outputs present re-hashed against dvc.lock: all match" in r.stderr

    flip(small / "two/a.txt")
    flip(small / "note.json")
    r = rlhf(small, "verify", "--present")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.startswith("two: expected ") and "(a.txt)" in ln for ln in lines), lines
    assert "  repair: rm -rf two && dvc checkout two" in lines
    assert any(ln.startswith("  repair: git checkout -- note.json") for ln in lines), lines
    assert "2 differ" in r.stderr
    # The printed repair restores the bytes (a plain `dvc checkout --force` would not).
    bindir = Path(sys.executable).parent
    env = {**GIT_ENV, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    repair = "rm -rf two && dvc checkout two"
    subprocess.run(repair, shell=True, cwd=small, check=True, env=env, capture_output=True)
    git(small, "checkout", "--", "note.json")
    r = rlhf(small, "verify", "--present")
    assert r.returncode == 0, r.stdout + r.stderr


def _drop_from_cache(root: Path, path: str) -> None:
    """Remove an output's objects from the local DVC cache (as on a clone where its stage
    never ran), keeping its hash in dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    for st in lock["stages"].values():
        for o in st.get("outs", []):
            if o["path"] == path:
                md5 = o["md5"]
                obj = root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
                if md5.endswith(".dir"):
                    for e in json.loads(obj.read_text()):
                        (root / ".dvc/cache/files/md5" / e["md5"][:2] / e["md5"][2:]).unlink()
                obj.unlink()


def test_push_sends_only_what_the_cache_holds_and_pull_checks_out_what_it_got(small, tmp_path):
    store = tmp_path / "store"
    _drop_from_cache(small, "two")
    before = snapshot(small, *OUTPUTS)
    r = rlhf(small, "share", "push", "--all")
    assert r.returncode == 0, r.stderr
    assert "not pushed, not in the local DVC cache (1" in r.stderr and "two (two)" in r.stderr
    assert "Traceback" not in r.stderr
    assert snapshot(small, *OUTPUTS) == before
    assert any(p.is_file() for p in store.rglob("*"))

    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(small), str(mate)], check=True)
    r = rlhf(mate, "share", "pull", "--all")
    assert r.returncode == 1
    line = one_line_error(r)
    assert "not on the remote, not checked out (1 of 2): two (two)" in line
    assert "dvc repro two" in line
    # Everything the remote had is checked out, byte for byte.
    assert (mate / "one.txt").read_bytes() == (small / "one.txt").read_bytes()
    assert not (mate / "two").exists()


def test_push_with_nothing_in_the_cache_is_one_line(small):
    for p in ("one.txt", "two"):
        _drop_from_cache(small, p)
    r = rlhf(small, "share", "push", "--all")
    assert r.returncode == 1
    assert "nothing to push" in one_line_error(r)


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    r = rlhf(tmp_path, "ablations", "run", "--seeds", "zero")
    assert r.returncode == 1
    assert "ValueError" in one_line_error(r) and "--debug" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", "--debug", "ablations", "run", "--seeds", "zero"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert "Traceback" in r.stderr


# ------------------------------------------------------------------------------------------
# rlhf convert / rlhf prompts
# ------------------------------------------------------------------------------------------


@pytest.fixture
def old_output(tmp_path):
    """An existing output and quarantine, which a failed run must leave as they are."""
    out, q = tmp_path / "s.parquet", tmp_path / "s.quarantine.parquet"
    out.write_bytes(b"old output")
    q.write_bytes(b"old quarantine")
    return out, q


@pytest.mark.parametrize("cmd", [("convert", "--from", "hh-rlhf"), ("prompts", "--from", "plain")])
def test_one_pretty_printed_json_object_is_refused_as_not_json_lines(tmp_path, old_output, cmd):
    out, q = old_output
    src = tmp_path / "one.json"
    src.write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": "b"}, indent=2))
    extra = ("--quarantine", str(q)) if cmd[0] == "convert" else ()
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", *cmd, str(src), str(out), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "expected JSON lines or a JSON array" in one_line_error(r)
    assert out.read_bytes() == b"old output" and q.read_bytes() == b"old quarantine"


def test_convert_auto_on_a_question_file_points_to_rlhf_prompts(tmp_path, old_output):
    out, q = old_output
    src = tmp_path / "question.jsonl"
    rows = [{"question_id": i, "category": "writing", "turns": [f"q{i}", "more"]} for i in range(3)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", "convert", "--from", "auto", str(src), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "`rlhf prompts --from questions " in one_line_error(r)
    assert out.read_bytes() == b"old output" and q.read_bytes() == b"old quarantine"
