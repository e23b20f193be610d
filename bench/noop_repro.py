"""A `dvc repro` on the finished pipeline: it must run no stage, and quickly (target <= 5 s).

python bench/noop_repro.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    dvc = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")
    t = time.perf_counter()
    r = subprocess.run([dvc, "repro"], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    ran = re.findall(r"Running stage '([^']+)'", r.stdout)
    print(f"no-op dvc repro: {seconds:.1f} s, exit {r.returncode}, stages run: {ran or 'none'}")
    print(f"RATIO no-op dvc repro seconds: {seconds:.1f} s (target <= 5 s)")
    if r.returncode or ran:
        sys.exit("the pipeline was not up to date: run `dvc repro` first")


if __name__ == "__main__":
    main()
