"""Results tables generated from the metrics files, never typed by hand.

``python -m rlhf.summary --readme README.md`` rewrites the block between
``<!-- results:start -->`` and ``<!-- results:end -->`` from ``reports/``.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from rlhf import paths
from rlhf.io import write_text

SECTIONS = ("chat", "chat-hard", "safety", "reasoning")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def results_markdown(root: Path = Path(".")) -> str:
    params = yaml.safe_load((root / paths.PARAMS).read_text())
    policies = ["sft", "offline_dpo", *params.get("iterations", {})]
    lines = [
        "| policy | gold reward | win-rate vs SFT | LC win-rate vs SFT | mean length (words) | correctness: "
        + " / ".join(SECTIONS)
        + " |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for p in policies:
        f = root / paths.eval_metrics(p)
        if not f.exists():
            lines.append(f"| {p} | not run | | | | |")
            continue
        m = _load(f)
        corr = " / ".join(f"{m['correctness'].get(c, float('nan')):.2f}" for c in SECTIONS)
        lines.append(
            f"| {p} | {m['gold_mean']:.3f} | {m['win_rate_vs_sft']:.3f} | {m['lc_win_rate_vs_sft']:.3f} "
            f"| {m['mean_length_words']:.1f} | {corr} |"
        )
    out = "\n".join(lines)
    rm_file = root / "reports" / "rm_eval.json"
    if rm_file.exists():
        rm = _load(rm_file)
        acc = ", ".join(
            f"{c} {rm['accuracy_by_section'].get(c, float('nan')):.2f}" for c in SECTIONS
        )
        out += (
            f"\n\nReward model vs the gold judge on {rm['heldout_pairs']} held-out pairs: accuracy "
            f"{rm['accuracy']:.3f} ({acc}). Mean per-prompt length–reward Pearson r: "
            f"RM {rm['length_reward_corr_rm']:.2f}, gold judge {rm['length_reward_corr_gold']:.2f}."
        )
    timings = sorted((root / paths.TIMINGS_DIR).glob("*.json"))
    if timings:
        walls = ", ".join(f"`{f.stem}` {_load(f)['wall_s']}" for f in timings)
        out += f"\n\nStage work in seconds on this machine (inside each stage, without ~7 s of start-up): {walls}."
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
