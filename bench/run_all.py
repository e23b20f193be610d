"""Every benchmark, one after the other, after a finished `dvc repro` (repository root):

    python bench/run_all.py

Prints the machine, then each benchmark's lines; the `RATIO` lines are the README's table.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

BENCHES = (
    "noop_repro",
    "analytics",
    "generation",
    "scoring",
    "workers",
    "trainers",
    "compute_mode",
    "stage_times",
    "real_size",
)


def main() -> None:
    here = Path(__file__).parent
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {gpu}, "
          f"Python {platform.python_version()}, torch {torch.__version__}")  # fmt: skip
    failed = []
    for name in BENCHES:
        print(f"\n== bench/{name}.py", flush=True)
        r = subprocess.run([sys.executable, str(here / f"{name}.py")], stdout=sys.stdout)
        if r.returncode:
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
