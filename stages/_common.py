"""Shared argument handling for the thin stage entry points."""

from __future__ import annotations

import argparse
import sys
import time

from rlhf.core.config import ConfigError, Params, load_params
from rlhf.core.io import write_json
from rlhf.core.paths import PARAMS, timing


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=str(PARAMS), help="params file (default: params.yaml)")
    return p


def params_or_exit(path: str) -> Params:
    try:
        return load_params(path)
    except ConfigError as e:
        sys.exit(f"error: {e}")


class Timer:
    """Wall time of a stage, written to reports/timings/<name>.json.

    Timings change on every run, so they live outside the DVC-tracked metrics: otherwise
    dvc.lock would differ after every reproduction of identical results.
    """

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self._t = time.perf_counter()
        return self

    def __exit__(self, exc_type, *exc):
        self.seconds = round(time.perf_counter() - self._t, 1)
        if exc_type is None:
            write_json(timing(self.name), {"wall_s": self.seconds})
