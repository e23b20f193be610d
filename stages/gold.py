"""Stage `gold`: the gold judge scores every response the loop sampled (all iterations), for the
report's diagnostics; an empty table when evaluate.judge is not the gold judge."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.schemas import write_table
from rlhf.evaluation.gold import gold_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default=str(paths.SCORED_GOLD))
    args = p.parse_args()
    params = params_or_exit(args.params)
    with Timer("gold"):
        table = gold_table(params.evaluate.judge, list(Path(".").glob(paths.GLOBS["scored"])))
    write_table("scored_gold", table, args.out)
    print(f"gold: {table.num_rows} responses judged")


if __name__ == "__main__":
    main()
