"""DuckDB analytics over the pipeline's Parquet tables.

DuckDB 2.0 notes: always use an explicit connection (module-level ``duckdb.sql`` leaves
results open that break later calls) and fetch with ``.fetchall()`` / ``.pl()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

LENGTH_UNIT = "words"  # whitespace-separated words: model-independent, unlike token counts


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    # Words in a string; an empty or blank string has 0 words.
    con.execute(
        "CREATE MACRO n_words(s) AS "
        "CASE WHEN trim(s) = '' THEN 0 ELSE len(string_split_regex(trim(s), '\\s+')) END"
    )
    # Words over a list of {role, content} messages.
    con.execute(
        "CREATE MACRO msgs_words(ms) AS "
        "coalesce(list_sum(list_transform(ms, lambda m: n_words(m.content))), 0)"
    )
    return con


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
