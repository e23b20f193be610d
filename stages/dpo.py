"""Stage `dpo@<iteration>`: for each seed, DPO from that replicate of the iteration's input policy
on its pairs (and, with dpo.history=accumulated, its pairs of all earlier iterations)."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table, write_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--pairs", required=True)
    p.add_argument("--history", required=True, help="the previous iteration's train_pairs.parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--train-pairs", required=True, help="where to record the pairs trained on")
    p.add_argument("--prompts", default=str(paths.PROMPTS), help="the KL budget's check prompts")
    p.add_argument("--curves", help="DVCLive curves folder (default: reports/curves/<iteration>)")
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.online.kl_budget import check_prompts
    from rlhf.online.loop import dpo_round, training_pairs

    pairs = training_pairs(
        params.dpo, read_table("pairs", args.pairs), read_table("pairs", args.history)
    )
    checks = None
    if params.dpo.kl_budget:
        checks = check_prompts(
            read_table("prompts", args.prompts), params.dpo.kl_check_prompts, params.prompts.seed
        )
    with Timer(f"dpo@{args.iteration}"):
        summaries = dpo_round(
            params, args.iteration, args.policy, args.sft, pairs, args.out, checks,
            Path(args.curves or paths.curves(args.iteration)),
        )  # fmt: skip
    write_table("pairs", pairs, args.train_pairs)
    kept = {s: {k: v for k, v in m.items() if k != "log"} for s, m in summaries.items()}
    ensure_curves(args.curves or paths.curves(args.iteration))  # exists even if no seed trained
    write_json(paths.iteration_dir(args.iteration) / "dpo.json", {"by_seed": kept})
    print(kept)


if __name__ == "__main__":
    main()
