"""The README's results block, generated from the report, never typed by hand.

``python -m rlhf.analytics.summary --readme README.md`` rewrites the block between
``<!-- results:start -->`` and ``<!-- results:end -->`` with the short version of
``reports/summary.md`` (written by the `report` stage): the claims' verdicts and the policies'
headline table. The whole summary, the full report and the stage wall times of the last run
(``reports/timings/``) go to the docs' results page (``python -m rlhf.docs_pages``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from rlhf.analytics.render import README_SECTIONS
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


def timings_markdown(root: Path = Path(".")) -> str | None:
    """The stage-times section, or None when this workspace has no timings (they are
    git-ignored: a fresh clone has none until it runs the stages)."""
    times = stage_times(root / paths.TIMINGS_DIR)
    if not times:
        return None
    return (
        "**Stage times of the run that wrote this block** (seconds on the machine that "
        "ran it, from the stages' own `reports/timings/`; `python bench/stage_times.py` "
        "prints them; DVC's own hashing between stages is not included):\n\n"
        + stage_times_markdown(times)
    )


def summary_text(root: Path = Path(".")) -> str:
    summary = root / paths.REPORT_SUMMARY_MD
    if not summary.exists():
        raise SystemExit(f"{summary}: missing; run `dvc repro` (its `report` stage writes it)")
    return summary.read_text().strip()


def results_markdown(root: Path = Path(".")) -> str:
    """The whole summary, then the stage times when this workspace has them."""
    out = summary_text(root)
    if (times := timings_markdown(root)) is not None:
        out += "\n\n" + times
    return out


def summary_sections(text: str) -> dict[str, str]:
    """`reports/summary.md` by section: each starts with a line `**Title.**`."""
    parts = re.split(r"^\*\*(.+?)\.\*\*$", text, flags=re.M)
    return {title: body.strip() for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def readme_results_markdown(root: Path = Path(".")) -> str:
    """The README's short version: the claims' verdicts and the headline table."""
    sections = summary_sections(summary_text(root))
    missing = [t for t in README_SECTIONS if t not in sections]
    if missing:
        raise SystemExit(f"{root / paths.REPORT_SUMMARY_MD}: no section {missing}")
    return "\n\n".join(f"**{t}.**\n\n{sections[t]}" for t in README_SECTIONS)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _block_pattern(name: str) -> re.Pattern:
    start, end = _markers(name)
    # Markers are lines of their own: prose may quote one in backticks.
    return re.compile(
        "^" + re.escape(start) + r"\n(.*?)\n?^" + re.escape(end) + "$", flags=re.S | re.M
    )


def block_body(text: str, name: str) -> str | None:
    """The body of `text`'s `<!-- name:start -->` ... `<!-- name:end -->` block, if any."""
    m = _block_pattern(name).search(text)
    return m.group(1) if m else None


def replace_block(text: str, name: str, body: str, where: str = "text") -> str:
    """`text` with the body of its one `<!-- name:start -->` ... `<!-- name:end -->` block
    (each marker a line of its own) replaced by `body`."""
    start, end = _markers(name)
    new, n = _block_pattern(name).subn(lambda _: f"{start}\n{body}\n{end}", text)
    if n != 1:
        raise SystemExit(f"{where}: needs exactly one {start} ... {end} block")
    return new


def update_readme(readme: Path, root: Path = Path(".")) -> None:
    text = replace_block(readme.read_text(), "results", readme_results_markdown(root), str(readme))
    write_text(readme, text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--readme", default="README.md")
    args = p.parse_args()
    update_readme(Path(args.readme))


if __name__ == "__main__":
    main()
