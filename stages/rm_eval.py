"""Stage `rm_eval`: reward-model accuracy against the gold judge per section, and the
length-reward correlation of the RM and of the gold judge."""

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.evaluation.rm_eval import rm_eval
from rlhf.prompts.splits import read_split


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument("--out", default=str(paths.REPORTS_DIR / "rm_eval.json"))
    args = p.parse_args()
    params = params_or_exit(args.params)
    prompts = read_split(args.prompts, "eval")
    if params.evaluate.judge != "gold":
        metrics = {
            "status": "not measured",
            "why": "evaluate.judge is the reward model: real prompts have no gold judge to "
            "label held-out pairs (use a labelled benchmark such as RewardBench)",
        }
    else:
        with Timer("rm_eval"):
            metrics = rm_eval(params.rm_eval, args.rm, prompts)
    write_json(args.out, metrics)
    print(metrics)


if __name__ == "__main__":
    main()
