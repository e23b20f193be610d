"""A serving engine (transformers serve, vLLM, SGLang, ...) started for one stage on exactly
the model folder the stage samples from, and stopped with it: at the end, on any failure, and
when the stage's process dies (the kernel sends the engine SIGTERM, Linux's parent-death
signal), so that no engine outlives its stage."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from rlhf.core.config import ConfigError, ServerConfig
from rlhf.core.http import answers

# Packages whose version names an engine, by the program or `python -m` module that starts it.
_PACKAGES = {"transformers": "transformers", "vllm": "vllm", "sglang": "sglang"}
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class EngineFailed(ConfigError):
    """The engine did not start, stopped answering, or failed too many samples: the stage stops
    (its finished shards stay for the re-run). A ConfigError, as the LLM judge's JudgeFailed,
    so that the stages say it in one line: the remedy is a setting (the command, a timeout, the
    cap) or the engine itself, named with its log."""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def engine_name(argv: list[str]) -> str:
    """`<package> <version>` of the engine a command starts (e.g. `transformers 5.23.0`), from
    its program or `python -m` module; the program's name when it is none of those known."""
    prog = Path(argv[0]).name
    if prog.startswith("python") and "-m" in argv[:-1]:
        prog = argv[argv.index("-m") + 1].split(".")[0]
    package = _PACKAGES.get(prog)
    if package is None:
        return prog
    try:
        return f"{package} {md.version(package)}"
    except md.PackageNotFoundError:
        return package


def _parent_death_signal():
    """A function for the child to run before exec: the kernel sends it SIGTERM when the stage's
    process dies, even by SIGKILL (no `finally` runs then). Linux only (None elsewhere). prctl is
    looked up here, in the parent: the child of a threaded process may not load libraries."""
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


class Engine:
    """One engine process serving `model_dir` on a free port of `cfg.host`; a context manager.
    Its output goes to `log` (kept when it fails, named in the error)."""

    def __init__(
        self, cfg: ServerConfig, model_dir: str | Path, log: str | Path, gpu: int | None = None
    ):
        self.port = free_port(cfg.host)
        self._stopped = False
        # Absolute: the engine's command line names the folder it serves, wherever it runs.
        self.model = os.path.abspath(model_dir)
        fields = {"model": self.model, "host": cfg.host, "port": self.port}
        # Split first, then fill: a model path with spaces stays one argument.
        self.argv = [a.format(**fields) for a in shlex.split(cfg.command)]
        beside = Path(sys.executable).parent / self.argv[0]
        if not shutil.which(self.argv[0]) and beside.is_file():
            # An engine installed in this environment, which is not on PATH (not activated).
            self.argv[0] = str(beside)
        self.name = engine_name(self.argv)
        self.url = f"http://{cfg.host}:{self.port}/v1"
        self.log = Path(log)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        # Offline unless the user says otherwise: the engine loads the local folder, and code
        # here never downloads weights by default.
        env = {"HF_HUB_OFFLINE": "1", **os.environ}
        if gpu is not None:  # one worker's engine on that worker's GPU (not verified: no GPU)
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        with self.log.open("ab") as out:
            try:
                self.proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own process group: stop() reaches its children
                    preexec_fn=_parent_death_signal(),
                )
            except OSError as e:
                raise EngineFailed(f"server.command: cannot start {self.argv[0]}: {e}") from e
        try:
            self._wait_healthy(cfg.startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout_s: float) -> None:
        health = f"http://{self.url.split('//')[1].split('/')[0]}/health"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineFailed(
                    f"{self.name} exited with code {self.proc.returncode} before it answered "
                    f"{health}: {self.tail()}"
                )
            if answers(health):
                return
            time.sleep(0.25)
        raise EngineFailed(f"{self.name} did not answer {health} in {timeout_s:g} s: {self.tail()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 5) -> str:
        """The last lines of the engine's log, for an error message."""
        try:
            last = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            last = []
        return f"log {self.log}" + (": " + " | ".join(last) if last else " (empty)")

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM to the engine's process group, SIGKILL after `grace_s`; waits for it. Once:
        a later call could reach another group that reused the number."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Whatever it started in its group and left behind.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
