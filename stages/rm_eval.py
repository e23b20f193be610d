"""Stage `rm_eval`: the paper's Table 2 — the Bradley-Terry reward model, the pairwise
preference model and the LLM-as-judge against the gold judge per section, with their length
and position bias; every signal also on a RewardBench-style file when rm_eval.benchmark names
one. An ensemble RM's members also one by one on each iteration's own samples."""

import sys

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.io import write_json
from rlhf.prompts.splits import read_split


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument("--pm", default=str(paths.PREFERENCE_MODEL))
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument(
        "--gold",
        default=str(paths.SCORED_GOLD),
        help="gold scores of the iterations' samples: the members' on-policy accuracy",
    )
    p.add_argument("--out", default=str(paths.RM_EVAL))
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.core.schemas import read_table
    from rlhf.evaluation.judges import pairwise_judge
    from rlhf.evaluation.rm_eval import benchmark, onpolicy_members, rm_eval
    from rlhf.online.scoring import RewardScorer

    cfg, llm = params.rm_eval, params.evaluate.llm
    with Timer("rm_eval"):
        if params.evaluate.judge == "gold":
            prompts = read_split(args.prompts, "eval")
            scorer = RewardScorer(args.rm)  # loaded once for Table 2 and the members
            metrics = rm_eval(cfg, args.rm, prompts, args.pm, llm, scorer)
            scored = {
                k: read_table("scored", paths.iteration_dir(k) / "scored.parquet")
                for k in params.iterations
            }
            members = onpolicy_members(scorer, scored, read_table("scored_gold", args.gold))
            if members:
                metrics["onpolicy_members"] = members
        else:
            metrics = {
                "status": "not measured",
                "why": "evaluate.judge is not the gold judge: real prompts have no gold judge to "
                "label held-out pairs (rm_eval.benchmark scores a labelled file instead)",
            }
            if cfg.benchmark:
                judges = {n: pairwise_judge(n, args.rm, args.pm, llm) for n in cfg.signals}
                metrics["benchmark"] = benchmark(cfg, judges)
    write_json(args.out, metrics)
    print(metrics)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:  # a setting found wrong only when used: a judge template
        sys.exit(f"error: {e}")
