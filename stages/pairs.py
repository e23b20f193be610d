"""Stage `pairs@<iteration>`: chosen/rejected per prompt (best-of-n vs worst-of-n by default)."""

from _common import params_or_exit, parser

from rlhf.core.io import write_json
from rlhf.core.schemas import read_table, write_table
from rlhf.online.pairs import select_pairs


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--scored", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--report", required=True)
    args = p.parse_args()
    cfg = params_or_exit(args.params).pairs
    table, report = select_pairs(cfg, args.iteration, read_table("scored", args.scored))
    write_table("pairs", table, args.out)
    write_json(args.report, report)
    print(report)


if __name__ == "__main__":
    main()
