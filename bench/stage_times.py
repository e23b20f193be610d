"""Where a run's time goes: each stage's start-up (process start to its first line of work:
interpreter, imports, params) and work, from the stages' own `reports/timings/`, with the sums
over the pipeline. With `--before DIR` (another run's `reports/timings/`, e.g. of an older
commit run on the same machine) the two side by side, with the ratio.

    python bench/stage_times.py [--before /path/to/old/reports/timings]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlhf.analytics.summary import stage_times, stage_times_markdown
from rlhf.core import paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timings", default=str(paths.TIMINGS_DIR), help="this run's timings")
    p.add_argument("--before", default="", help="another run's timings folder, to compare")
    args = p.parse_args()
    after = stage_times(Path(args.timings))
    if not after:
        raise SystemExit(f"{args.timings}: no timings; run `dvc repro` first")
    if not args.before:
        print(stage_times_markdown(after))
        return
    before = stage_times(Path(args.before))
    # Work seconds on both sides: timings of older code have no start-up recorded.
    print("| stage | work before (s) | work after (s) | after / before |\n|---|---|---|---|")
    for name in sorted(before.keys() | after.keys()):
        b, a = before.get(name), after.get(name)
        fb = f"{b['wall_s']:.1f}" if b else "—"
        fa = f"{a['wall_s']:.1f}" if a else "—"
        ratio = f"{a['wall_s'] / b['wall_s']:.2f}" if a and b else "—"
        print(f"| `{name}` | {fb} | {fa} | {ratio} |")
    tb = sum(t["wall_s"] for t in before.values())
    ta = sum(t["wall_s"] for t in after.values())
    print(f"| all | {tb:.1f} | {ta:.1f} | {ta / tb:.2f} |")
    print(f"RATIO stage work after / before: {ta / tb:.2f}")


if __name__ == "__main__":
    main()
