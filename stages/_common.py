"""Shared argument handling for the thin stage entry points.

Stages import their heavy libraries (torch, transformers, trl, datasets) inside `main`, after
the arguments and params are read: `--help` answers without them, and `params_or_exit` puts the
process in the reproducible compute mode before torch loads (rlhf/core/compute.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rlhf.core import compute
from rlhf.core.config import ConfigError, Params, load_params
from rlhf.core.io import write_json
from rlhf.core.paths import PARAMS, timing


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=str(PARAMS), help="params file (default: params.yaml)")
    return p


def params_or_exit(path: str) -> Params:
    """The params, validated (one line and exit 1 if not), with the process pinned to their
    compute mode."""
    try:
        params = load_params(path)
    except ConfigError as e:
        # Under `dvc repro` the stage's previous outputs were already removed from the workspace
        # before this check could run (they stay in DVC's cache): say how to get them back.
        stage = os.environ.get("DVC_STAGE")
        hint = f"; `dvc checkout {stage}` restores its previous outputs" if stage else ""
        sys.exit(f"error: {e}{hint}")
    compute.pin(params.compute)
    return params


def _seconds_since_process_start() -> float | None:
    """Wall seconds since the kernel started this process (Linux; None elsewhere): a re-exec
    keeps the process, so its cost is counted."""
    try:
        stat = Path(f"/proc/{os.getpid()}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime, clock ticks
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - started, 2)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


class Timer:
    """Wall time of a stage's work, written to reports/timings/<name>.json with its start-up
    (process start to the first line of work: interpreter, imports, params) and the compute
    mode in force (bench/stage_times.py reads them).

    Timings change on every run, so they live outside the DVC-tracked metrics: otherwise
    dvc.lock would differ after every reproduction of identical results.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.startup = _seconds_since_process_start()
        compute.apply_torch()
        self._t = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc):
        self.seconds = round(time.perf_counter() - self._t, 1)
        if exc_type is None:
            write_json(
                timing(self.name),
                {"wall_s": self.seconds, "startup_s": self.startup, "compute": compute.in_force()},
            )
