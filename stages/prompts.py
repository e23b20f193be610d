"""Stage `prompts`: dedupe the prompt pool and cut disjoint eval / per-iteration splits."""

from _common import params_or_exit, parser

from rlhf import paths
from rlhf.io import write_json
from rlhf.prompt_splits import split_prompts
from rlhf.schemas import read_table, write_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--pool", default=str(paths.PROMPT_POOL))
    p.add_argument("--out", default=str(paths.PROMPTS))
    args = p.parse_args()
    cfg = params_or_exit(args.params).prompts
    table, report = split_prompts(cfg, read_table("prompt_pool", args.pool))
    write_table("prompts", table, args.out)
    write_json(paths.PROMPT_SPLITS_JSON, report)
    print(report)


if __name__ == "__main__":
    main()
