"""DuckDB analytics over the pipeline's Parquet tables.

DuckDB 2.0 notes: always use an explicit connection (module-level ``duckdb.sql`` leaves
results open that break later calls) and fetch with ``.fetchall()`` / ``.pl()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

# ---------------------------------------------------------------------------------------
# Views over every output, for `rlhf sql` and the report
# ---------------------------------------------------------------------------------------


def _parquet_views(root: Path) -> dict[str, str]:
    """View name -> Parquet path or glob, for every pipeline table."""
    from rlhf.core import paths

    single = {
        "preferences": paths.PREFERENCES,
        "quarantine": paths.QUARANTINE,
        "prompt_pool": paths.PROMPT_POOL,
        "demonstrations": paths.DEMONSTRATIONS,
        "prompts": paths.PROMPTS,
        "gold": paths.SCORED_GOLD,
    }
    views = {k: str(root / v) for k, v in single.items()}
    views.update({k: str(root / g) for k, g in paths.GLOBS.items()})
    return views


# Views whose rows belong to one iteration or one evaluated policy, and the column that says which.
_ITERATION_VIEWS = {"generations", "scored", "pairs", "train_pairs", "gold"}
_POLICY_VIEWS = {"evaluations", "metrics"}


def register_views(
    con: duckdb.DuckDBPyConnection,
    root: str | Path = ".",
    iterations: Sequence[str] | None = None,
) -> dict[str, str]:
    """Create one DuckDB view per pipeline output that exists under `root`; returns the views
    made and what each reads. Iteration tables are unioned over iterations (column
    `iteration`); `metrics` holds one row per evaluated policy (intervals as structs).

    With `iterations` (params.yaml's), only those iterations and the policies in paths.BASELINE_POLICIES
    and those iterations are read: DVC leaves the outputs of an iteration removed from
    params.yaml (or of another profile's run) on disk, and the glob would mix them in."""
    from rlhf.core import paths

    root = Path(root)
    made: dict[str, str] = {}

    def where(name: str) -> str:
        if iterations is None:
            return ""
        if name in _ITERATION_VIEWS:
            col, keep = "iteration", list(iterations)
        elif name in _POLICY_VIEWS:
            col, keep = "policy", [*paths.BASELINE_POLICIES, *iterations]
        else:
            return ""
        return f" WHERE {col} IN ({', '.join(_sql_str(k) for k in keep) or 'NULL'})"

    for name, src in _parquet_views(root).items():
        if not list(root.glob(str(Path(src).relative_to(root)))):
            continue
        con.execute(
            f"CREATE OR REPLACE VIEW {name} AS "
            f"SELECT * FROM read_parquet('{src}', union_by_name = true){where(name)}"
        )
        made[name] = src
    metrics = root / paths.REPORTS_DIR / "eval"
    if list(metrics.glob("*.json")):
        src = str(metrics / "*.json")
        con.execute(
            "CREATE OR REPLACE VIEW metrics AS SELECT * FROM (SELECT "
            "regexp_extract(filename, '([^/]+)\\.json$', 1) AS policy, * EXCLUDE (filename) "
            f"FROM read_json_auto('{src}', filename = true, union_by_name = true))"
            f"{where('metrics')}"
        )
        made["metrics"] = src
    rm = root / paths.RM_EVAL
    if rm.exists():
        con.execute(f"CREATE OR REPLACE VIEW rm_eval AS SELECT * FROM read_json_auto('{rm}')")
        made["rm_eval"] = str(rm)
    return made


def _sql_str(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"


PAIR_STATS_SQL = """
WITH g AS (
    SELECT iteration, seed, prompt_id,
           max(penalized_reward) - min(penalized_reward) AS spread
    FROM scored GROUP BY ALL
), gs AS (
    SELECT iteration, count(*) AS prompt_groups, avg((spread = 0)::DOUBLE) AS tie_rate
    FROM g GROUP BY ALL
), p AS (
    SELECT iteration,
           count(*) AS n_pairs,
           avg(chosen_reward - rejected_reward) AS mean_margin,
           avg(chosen_length) AS mean_chosen_length,
           avg(rejected_length) AS mean_rejected_length,
           avg((chosen_length > rejected_length)::DOUBLE) AS chosen_longer_rate
    FROM pairs GROUP BY ALL
)
SELECT gs.iteration, gs.prompt_groups, coalesce(p.n_pairs, 0) AS n_pairs,
       1 - coalesce(p.n_pairs, 0) / gs.prompt_groups AS drop_rate, gs.tie_rate,
       p.mean_margin, p.mean_chosen_length, p.mean_rejected_length, p.chosen_longer_rate
FROM gs LEFT JOIN p USING (iteration)
ORDER BY gs.iteration
"""


def pair_stats(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per iteration: prompt groups (seed x prompt), pairs kept, drop rate (ties and identical
    texts), tie rate, mean reward margin, chosen/rejected length (score's length unit) and how
    often the chosen response is the longer one. Needs the `scored` and `pairs` views."""
    return con.sql(PAIR_STATS_SQL).pl().to_dicts()


REWARD_QUANTILES_SQL = """
SELECT iteration, count(*) AS responses, avg(reward) AS mean_reward, stddev_samp(reward) AS sd_reward,
       quantile_cont(reward, 0.1) AS p10, quantile_cont(reward, 0.5) AS p50,
       quantile_cont(reward, 0.9) AS p90
FROM scored GROUP BY ALL ORDER BY iteration
"""


def reward_distribution(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Reward-model score distribution of the generated responses per iteration."""
    return con.sql(REWARD_QUANTILES_SQL).pl().to_dicts()


LENGTH_CORR_SQL = """
WITH c AS (
    SELECT s.iteration, s.seed, s.prompt_id,
           corr(s.length::DOUBLE, s.reward) AS r_rm,
           corr(g.n_words::DOUBLE, g.gold) AS r_gold
    FROM scored s JOIN gold g USING (iteration, seed, prompt_id, sample_idx)
    GROUP BY ALL
)
-- A constant side has no correlation: NULL, not NaN, so it is left out rather than averaged.
SELECT iteration, seed, prompt_id,
       CASE WHEN isnan(r_rm) THEN NULL ELSE r_rm END AS r_rm,
       CASE WHEN isnan(r_gold) THEN NULL ELSE r_gold END AS r_gold
FROM c
ORDER BY iteration, seed, prompt_id
"""


def length_reward_correlations(con: duckdb.DuckDBPyConnection):
    """The paper's length-bias analysis (its Fig. 5): per prompt, the Pearson correlation between
    response length and reward over the n samples, for the RM and for the gold judge. Prompts
    whose samples all have the same length or reward have no correlation (NULL). Needs the
    `scored` and `gold` views; returns a Polars frame (one row per iteration x seed x prompt)."""
    return con.sql(LENGTH_CORR_SQL).pl()


ONPOLICY_SQL = """
WITH s AS (
    SELECT s.iteration, s.seed, s.prompt_id, s.sample_idx, s.penalized_reward AS proxy, g.gold
    FROM scored s JOIN gold g USING (iteration, seed, prompt_id, sample_idx)
), acc AS (
    -- Every pair of one prompt's n samples that the gold judge does not tie.
    SELECT a.iteration,
           count(*) AS gold_pairs,
           avg(((a.proxy > b.proxy) = (a.gold > b.gold))::DOUBLE)
               FILTER (WHERE a.proxy <> b.proxy) AS rm_accuracy
    FROM s a JOIN s b
      ON a.iteration = b.iteration AND a.seed = b.seed AND a.prompt_id = b.prompt_id
     AND a.sample_idx < b.sample_idx AND a.gold <> b.gold
    GROUP BY ALL
), ranked AS (
    -- Ties broken by sample index, as rlhf.online.pairs does.
    SELECT *,
           row_number() OVER (PARTITION BY iteration, seed, prompt_id
                              ORDER BY proxy DESC, sample_idx) AS rm_rank,
           row_number() OVER (PARTITION BY iteration, seed, prompt_id
                              ORDER BY proxy ASC, sample_idx) AS rm_rank_low,
           max(gold) OVER (PARTITION BY iteration, seed, prompt_id) AS gold_best,
           max(proxy) OVER (PARTITION BY iteration, seed, prompt_id)
             > min(proxy) OVER (PARTITION BY iteration, seed, prompt_id) AS has_pair
    FROM s
), bon AS (
    -- Chosen, rejected and best-of-n over the groups that give a pair (not all tied).
    SELECT iteration,
           avg(gold) AS gold_mean,
           avg(gold) FILTER (WHERE rm_rank = 1 AND has_pair) AS gold_chosen,
           avg(gold) FILTER (WHERE rm_rank_low = 1 AND has_pair) AS gold_rejected,
           avg(proxy) FILTER (WHERE rm_rank = 1 AND has_pair) AS proxy_chosen,
           avg(proxy) FILTER (WHERE rm_rank_low = 1 AND has_pair) AS proxy_rejected,
           avg(gold_best) FILTER (WHERE rm_rank = 1 AND has_pair) AS gold_best_of_n
    FROM ranked GROUP BY ALL
)
SELECT bon.iteration, acc.rm_accuracy, acc.gold_pairs, bon.gold_mean, bon.gold_chosen,
       bon.gold_rejected, bon.proxy_chosen, bon.proxy_rejected, bon.gold_best_of_n
FROM bon LEFT JOIN acc USING (iteration)
ORDER BY bon.iteration
"""


def onpolicy_diagnostics(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per iteration, on the policy's own samples: the reward model's pairwise accuracy against
    the gold judge (every pair of one prompt's n samples that gold does not tie; a proxy tie
    left out), the mean gold of all samples; over the prompt groups that give a pair (the RM does
    not tie them all), gold and proxy (length-penalised) reward of the RM's chosen (best-of-n)
    and rejected (worst-of-n) response, and the gold of the gold judge's own best-of-n. Needs the
    `scored` and `gold` views."""
    return con.sql(ONPOLICY_SQL).pl().to_dicts()
