"""The gold judge on the loop's generations: every sampled response of every iteration scored by
the world's gold judge, for the report's length-bias and on-policy diagnostics. An evaluation
step of its own (stage `gold`): the judge never feeds training, and the report only reads."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from rlhf.core.schemas import SCORED_GOLD, read_table
from rlhf.world.judge import judge


def score_gold(scored: pa.Table) -> pa.Table:
    """Gold-judge scores of every generated response (for the length-bias analysis)."""
    cols = scored.select(["iteration", "seed", "prompt_id", "sample_idx", "prompt", "response"])
    rows = []
    for r in cols.to_pylist():
        v = judge(r["prompt"][-1]["content"], r["response"])
        rows.append(
            {
                **{k: r[k] for k in ("iteration", "seed", "prompt_id", "sample_idx")},
                "n_words": v.n_words,
                "gold": v.gold,
                "correctness": v.correctness,
            }
        )
    return pa.Table.from_pylist(rows, schema=SCORED_GOLD)


def gold_table(judge_name: str, scored_files: list[Path]) -> pa.Table:
    """Gold scores of the responses in `scored_files`; an empty table where the evaluation's
    judge is not the gold judge (real prompts have none), never a stale one."""
    if judge_name != "gold" or not scored_files:
        return SCORED_GOLD.empty_table()
    return score_gold(pa.concat_tables([read_table("scored", f) for f in sorted(scored_files)]))
