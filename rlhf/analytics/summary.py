"""The README's results block, generated from the report, never typed by hand.

``python -m rlhf.analytics.summary --readme README.md`` rewrites the block between
``<!-- results:start -->`` and ``<!-- results:end -->`` with ``reports/summary.md`` (written by
the `report` stage) and the stage wall times of the last run (``reports/timings/``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rlhf.core import paths
from rlhf.core.io import write_text


def results_markdown(root: Path = Path(".")) -> str:
    summary = root / paths.REPORT_SUMMARY_MD
    if not summary.exists():
        raise SystemExit(f"{summary}: missing; run `dvc repro` (its `report` stage writes it)")
    out = summary.read_text().strip()
    timings = sorted((root / paths.TIMINGS_DIR).glob("*.json"))
    if timings:
        walls = {f.stem: json.loads(f.read_text())["wall_s"] for f in timings}
        listed = ", ".join(f"`{k}` {v}" for k, v in walls.items())
        out += (
            f"\n\nStage work in seconds on this machine, last run (inside each stage, without "
            f"~7 s of start-up; {sum(walls.values()) / 60:.1f} min in all): {listed}."
        )
    return out


def update_readme(readme: Path, root: Path = Path(".")) -> None:
    text = readme.read_text()
    block = f"<!-- results:start -->\n{results_markdown(root)}\n<!-- results:end -->"
    new, n = re.subn(
        r"<!-- results:start -->.*?<!-- results:end -->", lambda _: block, text, flags=re.S
    )
    if n != 1:
        raise SystemExit(
            f"{readme}: needs exactly one <!-- results:start --> ... <!-- results:end --> block"
        )
    write_text(readme, new)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--readme", default="README.md")
    args = p.parse_args()
    update_readme(Path(args.readme))


if __name__ == "__main__":
    main()
