"""Stage `rm_eval`: reward-model accuracy against the gold judge per section, and the
length-reward correlation of the RM and of the gold judge."""

from _common import Timer, params_or_exit, parser

from rlhf import paths
from rlhf.io import write_json
from rlhf.rm_eval import rm_eval
from rlhf.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument("--out", default=str(paths.REPORTS_DIR / "rm_eval.json"))
    args = p.parse_args()
    cfg = params_or_exit(args.params).rm_eval
    prompts = read_table("prompts", args.prompts)
    prompts = prompts.filter(prompts.column("split").to_numpy(zero_copy_only=False) == "eval")
    with Timer() as t:
        metrics = rm_eval(cfg, args.rm, prompts)
    write_json(args.out, {**metrics, "wall_s": t.seconds})
    print(metrics)


if __name__ == "__main__":
    main()
