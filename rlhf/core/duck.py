"""A DuckDB connection with the word-count macros that every length in the project's tables and
reports uses (`LENGTH_UNIT`): the mix's Table 1 and the analytics views share it."""

from __future__ import annotations

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
