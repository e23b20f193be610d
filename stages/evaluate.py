"""Stage `evaluate`: a policy's responses to the held-out eval prompts, judged by the gold
judge (or, for real prompts, by evaluate.judge: the reward model, the preference model or the
LLM-as-judge, the last two pairwise against SFT's answers); gold reward, win-rate and
length-controlled win-rate against SFT, length, per-section correctness, each with a bootstrap
interval over seeds and prompts. A replicated policy is
evaluated per seed (`<policy>/seed_<s>`); a shared one (SFT) once per seed's sampling seed."""

import sys

import pyarrow as pa
from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.io import skipped, write_json
from rlhf.core.schemas import empty, read_table, write_table
from rlhf.core.shards import clear
from rlhf.prompts.splits import read_split


def main() -> None:
    p = parser(__doc__)
    p.add_argument(
        "--name", required=True, help="policy name in reports (sft, offline_dpo, iter_1, ...)"
    )
    p.add_argument("--policy", required=True)
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument(
        "--rm", default=str(paths.REWARD_MODEL), help="judge under evaluate.judge=reward_model"
    )
    p.add_argument(
        "--pm",
        default=str(paths.PREFERENCE_MODEL),
        help="judge under evaluate.judge=preference_model",
    )
    p.add_argument(
        "--sft",
        default="",
        help="the SFT model, for each response's KL to SFT; empty for SFT itself",
    )
    p.add_argument(
        "--baseline", default="", help="the SFT policy's evaluation table; empty for SFT itself"
    )
    args = p.parse_args()
    params = params_or_exit(args.params)
    reason = skipped(args.policy)
    if reason is not None:  # a control that is off: no model, so nothing to evaluate
        with Timer(f"evaluate@{args.name}"):  # still a stage the run waits for (start-up)
            write_table("evaluations", empty("evaluations"), paths.eval_table(args.name))
            write_json(paths.eval_metrics(args.name), {"skipped": reason})
        print(f"evaluate {args.name}: skipped, {reason}")
        return
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.evaluation.evaluate import EvalModels, evaluate_policy, policy_metrics

    cfg = params.evaluate
    prompts = read_split(args.prompts, "eval")
    base = read_table("evaluations", args.baseline) if args.baseline else None
    models = EvalModels(cfg, args.rm, args.pm)  # loaded once for every seed
    with Timer(f"evaluate@{args.name}"):
        ev = pa.concat_tables(
            evaluate_policy(
                cfg,
                args.name,
                paths.replicate(args.policy, s),
                prompts,
                s,
                args.rm,
                args.sft or None,
                pm_dir=args.pm,
                baseline=base,
                models=models,
            )
            for s in params.seeds
        )
    write_table("evaluations", ev, paths.eval_table(args.name))
    clear(paths.shards(f"evaluate@{args.name}"))
    metrics = policy_metrics(ev, ev if base is None else base, cfg)
    write_json(paths.eval_metrics(args.name), metrics)
    print(metrics)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:  # found only when used: a judge template, a failing engine
        sys.exit(f"error: {e}")
