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


def stage_times(timings_dir: Path) -> dict[str, dict]:
    """Each stage's timing of the last run (`reports/timings/<stage>.json`, written by the
    stage itself): work seconds, start-up seconds (process start to first line of work; None
    where the platform cannot tell) and the compute mode it ran in."""
    return {f.stem: json.loads(f.read_text()) for f in sorted(timings_dir.glob("*.json"))}


def stage_times_markdown(times: dict[str, dict]) -> str:
    """The per-stage timing table with its sums."""
    rows = ["| stage | start-up (s) | work (s) |", "|---|---|---|"]
    for name, t in times.items():
        up = t.get("startup_s")
        rows.append(f"| `{name}` | {'—' if up is None else f'{up:.1f}'} | {t['wall_s']:.1f} |")
    work = sum(t["wall_s"] for t in times.values())
    up = sum(t.get("startup_s") or 0.0 for t in times.values())
    rows.append(f"| all {len(times)} stages | {up:.1f} | {work:.1f} |")
    return "\n".join(rows) + f"\n\nIn all {(work + up) / 60:.1f} min of stage processes."


def results_markdown(root: Path = Path(".")) -> str:
    summary = root / paths.REPORT_SUMMARY_MD
    if not summary.exists():
        raise SystemExit(f"{summary}: missing; run `dvc repro` (its `report` stage writes it)")
    out = summary.read_text().strip()
    times = stage_times(root / paths.TIMINGS_DIR)
    if times:
        out += (
            "\n\n**Stage times of the run that wrote this block** (seconds on the machine that "
            "ran it, from the stages' own `reports/timings/`; `python bench/stage_times.py` "
            "prints them; DVC's own hashing between stages is not included):\n\n"
            + stage_times_markdown(times)
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
