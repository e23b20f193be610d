"""All-or-nothing writes (rlhf.core.io): temporaries unique per writer that never touch a
user's files, concurrent writers of one output, and `rlhf convert` / `rlhf prompts` replacing
an output and its quarantine together or not at all, with write targets checked before the
input is read."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlhf.cli import EXIT_WRITE, main
from rlhf.core import datafiles, io
from rlhf.core.io import atomic_path, write_text

HH = [
    {
        "chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}",
        "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad",
    }
    for i in range(4)
]


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# --- atomic_path -------------------------------------------------------------------------------


def test_a_users_look_alike_files_survive_and_only_dead_writers_leftovers_go(tmp_path):
    out = tmp_path / "s.parquet"
    (tmp_path / "s.parquet.tmp-mybackup").write_text("mine")
    (tmp_path / "s.parquet.tmp-old").mkdir()
    (tmp_path / "s.parquet.tmp-123-notmine1").write_text("a file, not a writer's folder")
    live = tmp_path / f"s.parquet.tmp-{os.getppid()}-abcd1234"  # a running process's
    dead = tmp_path / f"s.parquet.tmp-{_dead_pid()}-abcd1234"  # a killed writer's
    live.mkdir()
    dead.mkdir()
    (dead / "s.parquet").write_text("half")
    write_text(out, "v1")
    assert out.read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "s.parquet",
            "s.parquet.tmp-mybackup",
            "s.parquet.tmp-old",
            "s.parquet.tmp-123-notmine1",
            live.name,
        ]
    )
    assert (tmp_path / "s.parquet.tmp-mybackup").read_text() == "mine"


def test_two_threads_writing_one_output_both_finish_and_one_wins_whole(tmp_path):
    out = tmp_path / "o.txt"
    out.write_text("old")
    both_open = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            with atomic_path(out) as tmp:
                tmp.write_text(tag * 100_000)
                both_open.wait(timeout=10)  # both temporaries exist at once
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    ts = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert out.read_text() in ("a" * 100_000, "b" * 100_000)
    assert [p.name for p in tmp_path.iterdir()] == ["o.txt"]


def test_two_processes_writing_one_folder_both_finish_and_one_wins_whole(tmp_path):
    out = tmp_path / "model"
    code = (
        "import sys, time; from pathlib import Path; from rlhf.core.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.mkdir()\n"
        "    for i in range(20): (tmp / f'w{i}').write_text(sys.argv[2] * 1000)\n"
        "    time.sleep(1.0)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(out), tag], stderr=subprocess.PIPE)
        for tag in "ab"
    ]
    results = [(p.wait(timeout=60), p.stderr.read().decode()) for p in procs]
    assert all(rc == 0 for rc, _ in results), results
    contents = {(out / f"w{i}").read_text() for i in range(20)}
    assert contents in ({"a" * 1000}, {"b" * 1000}) and len(list(out.iterdir())) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_folder_another_writer_lands_after_the_look_does_not_fail_this_one(tmp_path, monkeypatch):
    """The window the two-process test above hits by chance, made certain: both writers of a
    new folder saw no target, and the other's rename lands just before this one's."""
    out = tmp_path / "model"
    rename, landed = os.replace, []

    def the_other_lands_first(src, dst):
        if Path(dst) == out and not landed:
            landed.append(out)
            other = tmp_path / "other"
            other.mkdir()
            (other / "w").write_text("b")
            rename(other, out)
        return rename(src, dst)

    monkeypatch.setattr(os, "replace", the_other_lands_first)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "w").write_text("a")
    assert (out / "w").read_text() == "a" and [p.name for p in out.iterdir()] == ["w"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


# --- convert / prompts: an output and its quarantine together ------------------------------


@pytest.fixture
def converted(tmp_path, capsys):
    """A good conversion: (input, output, quarantine, their bytes)."""
    src = _jsonl(tmp_path / "hh.jsonl", HH + [{"chosen": 1, "rejected": "x"}])
    out = tmp_path / "out" / "pairs.parquet"
    rc, _, _ = _run(capsys, "convert", "--from", "hh-rlhf", src, out, "--max-quarantine", "0.5")
    assert rc == 0
    q = out.with_name("pairs.quarantine.parquet")
    return src, out, q, (out.read_bytes(), q.read_bytes())


def _unchanged(out: Path, q: Path, before) -> bool:
    return (out.read_bytes(), q.read_bytes()) == before and not list(out.parent.glob("*.tmp-*"))


@pytest.fixture
def read_only(tmp_path):
    """Make a folder read-only for this process: permission bits where they bind, else (as
    root, which they do not bind) a read-only tmpfs over it holding a copy of its files."""
    made: list[Path] = []

    def make(folder: Path) -> None:
        if os.geteuid() != 0:
            folder.chmod(0o555)
            made.append(folder)
            return
        saved = {p.name: p.read_bytes() for p in folder.iterdir()}
        r = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(folder)], capture_output=True)
        if r.returncode:
            pytest.skip(f"root, and cannot mount a read-only tmpfs: {r.stderr.decode().strip()}")
        made.append(folder)
        for name, data in saved.items():
            (folder / name).write_bytes(data)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)

    yield make
    for folder in made:
        if os.geteuid() != 0:
            folder.chmod(0o755)
        else:
            subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_target_is_refused_before_the_input_is_read(converted, read_only, capsys):
    src, out, q, before = converted
    read_only(out.parent)
    src.write_bytes(b"\x00 not json at all")  # reading it would be exit 3
    for argv in (
        ["convert", "--from", "hh-rlhf", src, out],
        ["prompts", "--from", "plain", src, out],
    ):
        rc, _, err = _run(capsys, *argv)
        assert rc == EXIT_WRITE, (argv, err)
        assert err.count("\n") == 1 and f"cannot write in {out.parent}" in err, err
        assert "nothing was read or written" in err
        assert (out.read_bytes(), q.read_bytes()) == before


def test_a_parent_that_is_a_file_is_refused_in_one_line(tmp_path, capsys):
    src = _jsonl(tmp_path / "hh.jsonl", HH)
    (tmp_path / "afile").write_text("x")
    rc, _, err = _run(capsys, "convert", "--from", "hh-rlhf", src, tmp_path / "afile/sub/o.parquet")
    assert rc == EXIT_WRITE and err.count("\n") == 1 and "is not a folder" in err, err


def test_a_failing_second_rename_leaves_both_old_files(converted, capsys, monkeypatch):
    src, out, q, before = converted
    _jsonl(src, HH[:2])  # a different result, which must not land half
    real, calls = os.replace, []

    def flaky(a, b, *args, **kw):
        calls.append(b)
        if len(calls) == 2:  # the quarantine's rename: a disk fault
            raise OSError(errno.EIO, "Input/output error")
        return real(a, b, *args, **kw)

    monkeypatch.setattr(io.os, "replace", flaky)
    rc, _, err = _run(capsys, "convert", "--from", "hh-rlhf", src, out)
    monkeypatch.undo()
    assert rc == EXIT_WRITE and err.count("\n") == 1 and "Input/output error" in err, err
    assert Path(calls[1]) == q  # the output had been renamed; it was put back
    assert _unchanged(out, q, before)


def test_a_full_disk_while_writing_the_quarantine_leaves_both_old_files(
    converted, capsys, monkeypatch
):
    src, out, q, before = converted
    _jsonl(src, HH[:2])
    real = datafiles._write_one

    def full(table, tmp, kind):
        if "quarantine" in tmp.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, tmp, kind)

    monkeypatch.setattr(datafiles, "_write_one", full)
    rc, _, err = _run(capsys, "convert", "--from", "hh-rlhf", src, out)
    assert rc == EXIT_WRITE and err.count("\n") == 1, err
    assert f"{q}: cannot write (No space left on device)" in err
    assert _unchanged(out, q, before)


def test_the_wrong_reader_keeps_the_old_output_and_its_quarantine(converted, capsys):
    src, out, q, before = converted
    rc, stdout, _ = _run(capsys, "convert", "--from", "shp", src, out, "--to", "trl")
    assert rc == 1 and "kept 0 pairs" in stdout
    assert _unchanged(out, q, before)  # the pair still belongs together


def test_a_killed_writer_never_leaves_half_an_output(tmp_path):
    out = tmp_path / "t.txt"
    write_text(out, "old")
    code = (
        "import os, signal, sys; from rlhf.core.io import atomic_paths\n"
        "with atomic_paths(sys.argv[1], sys.argv[2]) as (a, b):\n"
        "    a.write_text('new'); b.write_text('new')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "q.txt")])
    assert p.returncode < 0
    assert out.read_text() == "old" and not (tmp_path / "q.txt").exists()
    assert len(list(tmp_path.glob("*.tmp-*"))) == 2  # the dead writer's own folders
    # The next writer of each output removes that output's dead folders, nothing else.
    write_text(out, "v2")
    assert [x.name for x in tmp_path.glob("*.tmp-*")] == [
        x.name for x in tmp_path.glob("q.txt.tmp-*")
    ]
    write_text(tmp_path / "q.txt", "v2")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["q.txt", "t.txt"]


# --- a property: a write fault at any point leaves the old pair or the new pair ----------------


def test_a_fault_at_any_write_step_leaves_the_old_pair_or_the_new_one(tmp_path):
    """Hypothesis picks the n-th filesystem step of a conversion (a temporary folder made, a
    Parquet file written, a hard link kept, a rename) and the fault (disk full, read-only,
    I/O error, permission): the output and its quarantine are then both the old ones, and the
    command says so in one line with exit 4, or both the new ones with exit 0 (a fault it
    recovers from: a hard link refused falls back to a copy); no temporary is left behind."""
    import contextlib
    import io as stdio
    import tempfile as stdtemp

    from hypothesis import given, settings
    from hypothesis import strategies as st

    src = _jsonl(tmp_path / "hh.jsonl", HH + [{"chosen": 1, "rejected": "x"}])
    out = tmp_path / "out" / "pairs.parquet"
    q = out.with_name("pairs.quarantine.parquet")
    argv = ["convert", "--from", "hh-rlhf", str(src), str(out), "--max-quarantine", "0.6"]
    assert main(argv) == 0
    old = (out.read_bytes(), q.read_bytes())
    _jsonl(src, HH[:2] + [{"chosen": 2, "rejected": "y"}])  # another result, with a quarantine
    with stdtemp.TemporaryDirectory() as d:  # what the new pair looks like, written cleanly
        o2 = Path(d) / "pairs.parquet"
        assert main([*argv[:3], str(src), str(o2), "--max-quarantine", "0.6"]) == 0
        new = (o2.read_bytes(), o2.with_name("pairs.quarantine.parquet").read_bytes())
    assert new != old
    steps = [(io.os, "replace"), (io.os, "link"), (io.tempfile, "mkdtemp")]
    steps.append((datafiles, "_write_one"))
    faults = [errno.ENOSPC, errno.EROFS, errno.EIO, errno.EACCES]

    @settings(max_examples=60, deadline=None, database=None)
    @given(at=st.integers(0, 11), fault=st.sampled_from(faults))
    def one(at, fault):
        calls = []

        def failing(real):
            def call(*a, **kw):
                calls.append(real)
                if len(calls) - 1 == at:
                    raise OSError(fault, os.strerror(fault))
                return real(*a, **kw)

            return call

        out.write_bytes(old[0])  # every example starts from the old pair
        q.write_bytes(old[1])
        err = stdio.StringIO()
        with pytest.MonkeyPatch.context() as mp:
            for owner, name in steps:
                mp.setattr(owner, name, failing(getattr(owner, name)))
            with contextlib.redirect_stdout(stdio.StringIO()), contextlib.redirect_stderr(err):
                rc = main(argv)
        now = (out.read_bytes(), q.read_bytes())
        assert not list(out.parent.glob("*.tmp-*")), list(out.parent.iterdir())
        if rc == 0:
            assert now == new, (at, fault)
            assert at >= len(calls) or calls[at] is os.link, (at, calls)  # only a link recovers
        else:
            assert rc == EXIT_WRITE, (at, fault, err.getvalue())
            assert err.getvalue().count("\n") == 1 and os.strerror(fault) in err.getvalue()
            assert now == old, (at, fault)
        faulted.add(at < len(calls))

    faulted: set[bool] = set()
    one()
    assert faulted == {True, False}  # both kinds of example were drawn
