"""Shared argument handling for the thin stage entry points."""

from __future__ import annotations

import argparse
import sys

from rlhf.config import ConfigError, Params, load_params
from rlhf.paths import PARAMS


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
    """Wall time of a stage, for its summary file."""

    def __enter__(self):
        import time

        self._t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        import time

        self.seconds = round(time.perf_counter() - self._t, 1)
