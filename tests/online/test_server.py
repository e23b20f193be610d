"""generate.backend: server against a real engine on 127.0.0.1 (`transformers serve`, from the
dev set's `transformers[serving]`): a small `dvc repro` whose samples come from the engine runs
score -> pairs -> DPO -> evaluation, after an engine killed mid-stage stopped the stage with
one line and the re-run resumed from the finished shards; the samples do not depend on shard
or batch sizes; the stage's process killed leaves no engine behind; a bad reply is counted,
not crashed on, and pairs leave it out."""

import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from rlhf.core.config import EvaluateConfig, GenerateConfig, PairsConfig, ServerConfig
from rlhf.core.schemas import read_table
from rlhf.evaluation.evaluate import evaluate_policy
from rlhf.online.engine import Engine, EngineFailed
from rlhf.online.generation import generate
from rlhf.online.pairs import select_pairs
from rlhf.prompts.splits import read_split

from ..conftest import deep_update, run_dvc

pytest.importorskip("fastapi", reason="needs transformers[serving] (the dev set installs it)")
pytestmark = pytest.mark.slow
STAGE = "generate@iter_1"
GENERATIONS = Path("data/iterations/iter_1/generations.parquet")


def engines(under: Path) -> list[int]:
    """Live processes whose command line names a path under `under`: engines serving a model
    there (an engine is given its folder's absolute path; the stages, relative ones)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            args = (d / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if any(a.startswith(str(under)) for a in args):
            pids.append(int(d.name))
    return pids


def wait_until(check, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def set_params(root: Path, updates: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(deep_update(params, updates), sort_keys=False))


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def start_dvc(root: Path, *args: str) -> subprocess.Popen:
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen(
        [str(bindir / "dvc"), *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_pipeline_samples_from_a_real_engine_and_survives_kills(project, tmp_path):
    root = tmp_path / "run"
    shutil.copytree(project, root, symlinks=True)
    before = md5(root / GENERATIONS)
    # One replicate: an engine start per generate run, not two. Small shards: many to kill among.
    server = {"backend": "server", "n": 2, "batch_prompts": 2, "shard_prompts": 2}
    set_params(root, {"generate": server, "seeds": [0]})

    # The engine killed mid-stage: the stage stops with one line, keeps its shards, and leaves
    # no output and no engine behind.
    shards = root / ".rlhf/shards" / STAGE
    proc = start_dvc(root, "repro", "evaluate@iter_1")
    wait_until(lambda: list(shards.rglob("shard-*.json")) and engines(root), 300, "no shard")
    assert proc.poll() is None, "the stage ended before its engine could be killed"
    for pid in engines(root):
        os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    assert "stopped" in line and "Traceback" not in err, err[-2000:]
    assert not (root / GENERATIONS).exists() and not engines(root)
    finished = len(list(shards.rglob("shard-*.json")))

    # The re-run resumes from the finished shards with a fresh engine; score, pairs, DPO and
    # the evaluation then run on the engine's table.
    r = run_dvc(root, "repro", "evaluate@iter_1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    reused = re.findall(r"reusing (\d+) of (\d+) finished shards", r.stdout)
    assert sum(int(n) for n, _ in reused) == finished > 0
    ran = set(re.findall(r"Running stage '([\w@-]+)'", r.stdout))
    assert {STAGE, "score@iter_1", "pairs@iter_1", "dpo@iter_1", "evaluate@iter_1"} <= ran
    gens = read_table("generations", root / GENERATIONS)
    assert set(gens.column("backend").to_pylist()) == {f"server transformers {_version()}"}
    assert set(gens.column("finish_reason").to_pylist()) <= {"stop", "length"}
    assert gens.num_rows == 40 * 2  # prompts x n
    assert md5(root / GENERATIONS) != before
    assert json.loads((root / "reports/eval/iter_1.json").read_text())
    assert not engines(root)


def _version() -> str:
    import transformers

    return transformers.__version__


class FaultyProxy(http.server.ThreadingHTTPServer):
    """Forwards requests to an engine, answering the `bad`-th completion with a body that is
    not a completion (the engine still does the work)."""

    def __init__(self, target: str, bad: int):
        self.target, self.bad, self.count = target, bad, 0
        lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = urllib.request.Request(
                    proxy.target + self.path.removeprefix("/v1"),
                    body,
                    {"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=60) as r:
                    reply = r.read()
                with lock:
                    proxy.count += 1
                    if proxy.count == proxy.bad:
                        reply = b'{"choices": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def test_a_bad_reply_is_counted_and_left_out_of_pairs(project, tmp_path):
    sft = project / "models/sft"
    prompts = read_split(project / "data/prompts/prompts.parquet", "train_1").slice(0, 4)
    with Engine(ServerConfig(), sft, tmp_path / "engine.log") as engine:
        proxy = FaultyProxy(engine.url, bad=3)
        try:
            server = ServerConfig(endpoint=proxy.url, model=str(sft), max_failed_share=0.2)
            cfg = GenerateConfig(backend="server", server=server, n=2, max_new_tokens=8)
            # Each request's seed is its prompt's and sample's own: other shard and batch sizes
            # give the very same table (transformers serve, one request at a time).
            proxy.bad = 0
            with pytest.warns(UserWarning):
                one = generate(cfg, "iter_1", sft, prompts, 0, tmp_path / "one")
                small = replace(cfg, batch_prompts=1, shard_prompts=1)
                assert generate(small, "iter_1", sft, prompts, 0, tmp_path / "small").equals(one)
            proxy.count, proxy.bad = 0, 3
            with pytest.warns(UserWarning, match="DVC cannot hash"):
                gens = generate(cfg, "iter_1", sft, prompts, 0, tmp_path / "a")
            reasons = gens.column("finish_reason").to_pylist()
            assert reasons.count("error:bad_reply") == 1 and len(reasons) == 8
            assert set(gens.column("backend").to_pylist()) == {f"endpoint {proxy.url} {sft}"}

            scored = gens.append_column("penalized_reward", [[float(i) for i in range(8)]])
            scored = scored.append_column("length", [[1] * 8])
            _, report = select_pairs(PairsConfig(), "iter_1", scored)
            assert report["failed_samples"] == {"error:bad_reply": 1}
            assert report["prompt_groups"] == 4 and report["dropped"]["single_response"] == 1

            # Over the cap, the shard fails rather than keep a broken engine's samples.
            proxy.count, strict = 0, replace(server, max_failed_share=0.0)
            with pytest.raises(EngineFailed, match="1 of 8 samples failed"):
                generate(replace(cfg, server=strict), "iter_1", sft, prompts, 0, tmp_path / "b")

            # The evaluation samples from the engine too, and never judges a failed sample.
            lenient = replace(server, max_failed_share=0.5)  # the evaluation's own check
            ev = EvaluateConfig(backend="server", server=lenient, max_new_tokens=8)
            held_out = read_split(project / "data/prompts/prompts.parquet", "eval").slice(0, 2)
            proxy.count, proxy.bad = 0, 0
            table = evaluate_policy(ev, "sft", sft, held_out, 0, workdir=tmp_path / "c")
            assert table.num_rows == 2 * ev.samples_per_prompt
            assert all(0.0 <= g <= 1.0 for g in table.column("gold").to_pylist())
            proxy.count, proxy.bad = 0, 1
            with pytest.raises(EngineFailed, match="samples failed at the engine"):
                evaluate_policy(ev, "sft", sft, held_out, 0, workdir=tmp_path / "d")
        finally:
            proxy.shutdown()
    assert not engine.alive()


def test_an_engine_that_does_not_start_says_why_with_its_log(tmp_path):
    die = ServerConfig(
        command=f"{sys.executable} -c 'import sys; print(\"no model\"); sys.exit(3)'"
    )
    with pytest.raises(EngineFailed, match=r"exited with code 3 .*no model"):
        Engine(die, tmp_path, tmp_path / "engine.log")
    # Up, but never healthy (404 on /health): stopped after the timeout, not left running.
    mute = ServerConfig(
        command=f"{sys.executable} -m http.server {{port}} --bind {{host}} --directory {{model}}",
        startup_timeout_s=2.0,
    )
    with pytest.raises(EngineFailed, match="did not answer"):
        Engine(mute, tmp_path, tmp_path / "mute.log")
    assert not engines(tmp_path)


def test_an_engine_dies_with_the_process_that_started_it(tmp_path):
    """SIGKILL of the stage's process (no `finally` runs) still stops its engine: the kernel's
    parent-death signal. The engine here is a stand-in that answers /health (a file)."""
    (tmp_path / "health").write_text("ok")
    command = f"{sys.executable} -m http.server {{port}} --bind {{host}} --directory {{model}}"
    stage = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from rlhf.core.config import ServerConfig; "
         "from rlhf.online.engine import Engine; "
         f"Engine(ServerConfig(command={command!r}), sys.argv[1], sys.argv[2]); "
         "print('up', flush=True); time.sleep(600)",
         str(tmp_path), str(tmp_path / "engine.log")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert stage.stdout.readline().strip() == "up"
        engine = [pid for pid in engines(tmp_path) if pid != stage.pid]
        assert engine
        stage.kill()
        stage.wait()
        wait_until(lambda: not set(engine) & set(engines(tmp_path)), 30, "the engine outlived it")
    finally:
        stage.kill()
        for pid in engines(tmp_path):
            os.kill(pid, signal.SIGKILL)


def test_a_timeout_under_transformers_serve_stops_at_once(project, tmp_path):
    """transformers serve cannot cancel a request given up on: a retry would not be
    reproducible there, so the first timeout stops the stage (its shards stay)."""

    class Silent(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            time.sleep(3)

        def log_message(self, *a):
            pass

    silent = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=silent.serve_forever, daemon=True).start()
    prompts = read_split(project / "data/prompts/prompts.parquet", "train_1").slice(0, 2)
    try:
        url = f"http://127.0.0.1:{silent.server_address[1]}/v1"
        server = ServerConfig(endpoint=url, timeout_s=0.5, retries=3, backoff_s=1.0)
        cfg = GenerateConfig(backend="server", server=server, n=2, max_new_tokens=8)
        t = time.monotonic()
        with pytest.warns(UserWarning), pytest.raises(EngineFailed, match="no reply in 0.5 s"):
            generate(cfg, "iter_1", project / "models/sft", prompts, 0, tmp_path)
        assert time.monotonic() - t < 1.5 + 3  # one timeout, no back-off, no retry
    finally:
        silent.shutdown()
