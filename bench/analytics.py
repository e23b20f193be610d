"""DuckDB analytics at scale: the report's length-reward correlation and pair statistics over
about 1M scored rows (this run's scored, gold and pairs tables repeated under new prompt ids),
and the start-up of `rlhf sql`, measured in one run.

Run after `dvc repro`, from the repository root:

    python bench/analytics.py --rows 1000000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rlhf.analytics import views
from rlhf.core import paths
from rlhf.core.duck import connect


def scaled_copy(root: Path, rows: int) -> int:
    """Write scored, gold and pairs tables of about `rows` scored rows under `root`, in the
    pipeline's layout; returns the scored rows written."""
    con = connect()
    views.register_views(con, ".")
    have = con.sql("SELECT count(*) FROM scored").fetchall()[0][0]
    copies = max(1, round(rows / have))
    rep = f"(SELECT range AS k FROM range({copies}))"
    for name, rel in (
        ("scored", "data/iterations/ITER/scored.parquet"),
        ("pairs", "data/iterations/ITER/pairs.parquet"),
    ):
        for (it,) in con.sql(f"SELECT DISTINCT iteration FROM {name}").fetchall():
            dest = root / rel.replace("ITER", it)
            dest.parent.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"COPY (SELECT * REPLACE (prompt_id || '#' || k AS prompt_id) FROM {name}, {rep} "
                f"WHERE iteration = '{it}') TO '{dest}' (FORMAT parquet)"
            )
    gold = root / paths.SCORED_GOLD
    gold.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY (SELECT * REPLACE (prompt_id || '#' || k AS prompt_id) FROM gold, {rep}) "
        f"TO '{gold}' (FORMAT parquet)"
    )
    return have * copies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    try:
        n = scaled_copy(root, args.rows)
        t = time.perf_counter()
        con = connect()
        views.register_views(con, root)
        corr = views.length_reward_correlations(con)
        t_corr = time.perf_counter() - t
        t = time.perf_counter()
        stats = views.pair_stats(con)
        t_pairs = time.perf_counter() - t
        print(
            f"{n} scored rows: length-reward correlations ({corr.height} prompt groups) "
            f"{t_corr:.2f} s, pair statistics ({len(stats)} iterations) {t_pairs:.2f} s"
        )
        print(f"RATIO analytics seconds over {n} rows: {t_corr + t_pairs:.2f} s (target <= 2 s)")
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rlhf.cli", "sql", "SELECT 1"], check=True,
                       capture_output=True)  # fmt: skip
        print(f"rlhf sql start-up (whole command, one query): {time.perf_counter() - t:.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
