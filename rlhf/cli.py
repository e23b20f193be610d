"""The `rlhf` command: SQL over every pipeline output, and ablations as DVC experiments.

rlhf sql "SELECT iteration, avg(chosen_length - rejected_length) FROM pairs GROUP BY 1"
rlhf sql                      # interactive: end statements with ';', '.tables', '.quit'
rlhf sql --tables             # the views and the files behind them
rlhf ablations list|run|collect
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl


def _print_frame(df: pl.DataFrame, fmt: str, max_rows: int) -> None:
    if fmt == "csv":
        sys.stdout.write(df.write_csv())
    elif fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    elif fmt == "markdown":
        with pl.Config(
            tbl_formatting="MARKDOWN",
            tbl_hide_column_data_types=True,
            tbl_hide_dataframe_shape=True,
            tbl_rows=max_rows,
            tbl_cols=-1,
            fmt_str_lengths=80,
        ):
            print(df)
    else:
        with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
            print(df)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from rlhf import analytics

    con = analytics.connect()
    views = analytics.register_views(con, args.root)
    if not views:
        print(
            f"no pipeline outputs under {Path(args.root).resolve()}; run `dvc repro` first",
            file=sys.stderr,
        )
        return 1
    if args.tables:
        for name, src in sorted(views.items()):
            cols = con.sql(f"SELECT * FROM {name} LIMIT 0").columns
            print(f"{name:14s} {src}\n{'':14s} columns: {', '.join(cols)}")
        return 0

    def run(q: str) -> bool:
        try:
            rel = con.sql(q)
        except duckdb.Error as e:
            print(f"error: {e}", file=sys.stderr)
            return False
        if rel is not None:
            _print_frame(rel.pl(), args.format, args.max_rows)
        return True

    if args.query:
        return 0 if run(args.query) else 1
    print(f"views: {', '.join(sorted(views))}. End statements with ';'. .tables, .quit")
    buf: list[str] = []
    while True:
        try:
            line = input("rlhf> " if not buf else "  ...> ")
        except EOFError:
            print()
            return 0
        if not buf and line.strip() in (".quit", ".exit"):
            return 0
        if not buf and line.strip() == ".tables":
            print("\n".join(sorted(views)))
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            run("\n".join(buf))
            buf = []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rlhf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("sql", help="DuckDB SQL over every Parquet output and metrics file")
    q.add_argument("query", nargs="?", help="one statement; omit for an interactive session")
    q.add_argument("--root", default=".", help="project directory (default: .)")
    q.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    q.add_argument("--max-rows", type=int, default=50, help="rows shown in table formats")
    q.add_argument("--tables", action="store_true", help="list the views and their files")
    q.set_defaults(func=cmd_sql)

    from rlhf import ablations

    ablations.add_parser(sub)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
