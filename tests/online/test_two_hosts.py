"""Multi-node, checked across two hosts: two network namespaces on this machine joined by a veth
pair, each a host with an address of its own, and torchrun's static rendezvous over TCP between
them. Host 0 runs `dvc repro` with the multi-node launcher; host 1 runs the same stage command
with node rank 1, as a second machine would (docs/scale.md). Skipped where namespaces cannot be
made (they need root, or CAP_NET_ADMIN)."""

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ..conftest import deep_update

pytestmark = pytest.mark.slow
TIMEOUT_S = 300  # a rendezvous whose other node never comes waits 900 s: stop well before
IFNAME = "eth1"
"""Both hosts' interface: gloo binds to the address of GLOO_SOCKET_IFNAME (by default the
hostname's, loopback here, which the other host cannot reach), as on a cluster's nodes."""


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def hosts():
    """(host 0's namespace, host 1's namespace, host 0's address); removed afterwards with
    every process still inside them."""
    tag = f"{os.getpid() % 100000}"
    ns = (f"rlhf-h0-{tag}", f"rlhf-h1-{tag}")
    net = f"10.{200 + os.getpid() % 50}.{os.getpid() % 250}"
    veth = (f"rv0-{tag}", f"rv1-{tag}")
    if shutil.which("ip") is None or _ip("netns", "add", ns[0]).returncode:
        pytest.skip("network namespaces are not available here (they need root)")
    try:
        steps = [
            ("netns", "add", ns[1]),
            ("link", "add", veth[0], "type", "veth", "peer", "name", veth[1]),
            *[("link", "set", veth[i], "netns", ns[i]) for i in (0, 1)],
            *[("-n", ns[i], "link", "set", veth[i], "name", IFNAME) for i in (0, 1)],
            *[("-n", ns[i], "addr", "add", f"{net}.{i + 1}/24", "dev", IFNAME) for i in (0, 1)],
            *[("-n", ns[i], "link", "set", dev, "up") for i in (0, 1) for dev in (IFNAME, "lo")],
        ]
        for step in steps:
            r = _ip(*step)
            assert r.returncode == 0, (step, r.stderr)
        yield ns[0], ns[1], f"{net}.1"
    finally:
        for name in ns:
            for pid in _ip("netns", "pids", name).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", name)


def _launcher(addr: str, rank: int, port: int) -> str:
    return (
        f"{sys.executable} -m torch.distributed.run --nnodes 2 --nproc_per_node 1 "
        f"--node_rank {rank} --master_addr {addr} --master_port {port}"
    )


def _set_params(root: Path, updates: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(deep_update(params, updates), sort_keys=False))


def _stage_cmd(root: Path, stage: str, launcher_key: str) -> str:
    """The stage's command as `dvc repro` would run it now, from dvc.yaml's template: what a
    second machine runs by hand (or by its scheduler)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    name, _, key = stage.partition("@")
    cmd = spec[name]["do"]["cmd"] if key else spec[name]["cmd"]
    item = params["iterations"][key] if key else {}
    cmd = cmd.replace(f"${{compute.{launcher_key}}}", params["compute"][launcher_key])
    cmd = cmd.replace("${key}", key)
    for k, v in item.items():
        cmd = cmd.replace(f"${{item.{k}}}", str(v))
    assert "${" not in cmd, cmd
    return " ".join(cmd.split())


def _two_hosts(root: Path, hosts, stage: str, launcher_key: str, port: int):
    """Host 1 runs the stage command with node rank 1 while host 0 runs `dvc repro -s stage`
    with node rank 0; both stop by themselves (or are killed at TIMEOUT_S)."""
    ns0, ns1, addr = hosts
    _set_params(root, {"compute": {launcher_key: _launcher(addr, 0, port), "threads": 1}})
    node1 = _stage_cmd(root, stage, launcher_key).replace(
        _launcher(addr, 0, port), _launcher(addr, 1, port)
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GLOO_SOCKET_IFNAME": IFNAME,
    }

    logs = {name: root.parent / f"{stage}-{name}.log" for name in ("out0", "err0", "err1")}

    def start(cmd: list[str], out: Path, err: Path) -> subprocess.Popen:
        # Files, not pipes: a host blocked on a full pipe nobody reads would never end.
        with open(out, "w") as o, open(err, "w") as e:
            return subprocess.Popen(
                cmd, cwd=root, env=env, stdout=o, stderr=e, start_new_session=True
            )

    second = start(["ip", "netns", "exec", ns1, "bash", "-c", node1], os.devnull, logs["err1"])
    first = start(
        ["ip", "netns", "exec", ns0, sys.executable, "-m", "dvc", "repro", "-s", stage],
        logs["out0"],
        logs["err0"],
    )
    try:
        first.wait(timeout=TIMEOUT_S)
        second.wait(timeout=120)
    except subprocess.TimeoutExpired:
        for p in (first, second):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    out0, err0, err = (logs[k].read_text() for k in ("out0", "err0", "err1"))
    assert first.returncode == 0, err0[-3000:] + "\nhost 1:\n" + err[-3000:]
    assert second.returncode == 0, err[-3000:]
    return out0, err0 + err


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def copy(project, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(project, dest, symlinks=True)
    return dest


def test_generate_across_two_hosts_writes_the_table_of_one_worker(copy, hosts):
    table = copy / "data/iterations/iter_1/generations.parquet"
    before = _md5(table)
    _set_params(copy, {"generate": {"shard_prompts": 32}})  # both hosts get shards
    out, err = _two_hosts(copy, hosts, "generate@iter_1", "sample_launcher", 29511)
    assert "Running stage 'generate@iter_1'" in out
    assert "shards (worker 1)" in err  # host 1 sampled shards of its own
    assert _md5(table) == before


def test_a_training_stage_runs_as_ddp_across_two_hosts(copy, hosts, tmp_path):
    # The same two processes on one host (gloo over loopback) give the reference weights.
    one = tmp_path / "one"
    shutil.copytree(copy, one, symlinks=True)
    launcher = f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2"
    _set_params(one, {"compute": {"launcher": launcher, "threads": 1}})
    r = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "-s", "sft"], cwd=one, capture_output=True,
        text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    steps_one_host = yaml.safe_load((one / "reports/train/sft.json").read_text())["steps"]

    _two_hosts(copy, hosts, "sft", "launcher", 29512)
    summary = yaml.safe_load((copy / "reports/train/sft.json").read_text())
    assert summary["steps"] == steps_one_host  # each host took half of the examples
    weights = "models/sft/model.safetensors"
    assert _md5(copy / weights) == _md5(one / weights)  # DDP across hosts = DDP on one host
    assert not list((copy / "models").rglob("*.tmp-*"))  # host 1 wrote nothing of its own
