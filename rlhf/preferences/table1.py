"""The paper's Table 1 for a preference mix: pairs, prompts, prompt turns and lengths per source,
computed in DuckDB; the mix stage writes it beside the mix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from rlhf.core.duck import LENGTH_UNIT, connect

TABLE1_SQL = """
WITH p AS (
    SELECT
        source,
        prompt_id,
        list_slice(chosen, 1, len(chosen) - 1) AS prompt,
        chosen[len(chosen)].content AS chosen_answer,
        rejected[len(rejected)].content AS rejected_answer
    FROM read_parquet($path)
)
SELECT
    source,
    count(*) AS n_pairs,
    count(DISTINCT prompt_id) AS n_prompts,
    avg(len(prompt)) AS mean_prompt_turns,
    avg(msgs_words(prompt)) AS mean_prompt_length,
    avg(n_words(chosen_answer)) AS mean_chosen_length,
    avg(n_words(rejected_answer)) AS mean_rejected_length
FROM p
GROUP BY GROUPING SETS ((source), ())
ORDER BY source NULLS LAST
"""


def table1_stats(
    preferences: str | Path, con: duckdb.DuckDBPyConnection | None = None
) -> list[dict[str, Any]]:
    """The paper's Table 1 per source (and a final `total` row); lengths in words."""
    con = con or connect()
    rows = con.sql(TABLE1_SQL, params={"path": str(preferences)}).pl().to_dicts()
    for r in rows:
        r["source"] = r["source"] or "total"
        for k, v in r.items():
            if isinstance(v, float):
                r[k] = round(v, 3)
    return rows


def table1_markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| source | #pairs | #prompts | mean prompt turns | mean prompt length | "
        "mean chosen length | mean rejected length |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    body = "".join(
        f"| {r['source']} | {r['n_pairs']} | {r['n_prompts']} | {r['mean_prompt_turns']:.2f} | "
        f"{r['mean_prompt_length']:.1f} | {r['mean_chosen_length']:.1f} | {r['mean_rejected_length']:.1f} |\n"
        for r in rows
    )
    return (
        f"Preference-mix statistics (the paper's Table 1); lengths in {LENGTH_UNIT}.\n\n"
        + head
        + body
    )
