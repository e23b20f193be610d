"""Stage `dpo@<iteration>`: for each seed, DPO from that replicate of the iteration's input policy
on its pairs (and, with dpo.history=accumulated, its pairs of all earlier iterations)."""

import pyarrow as pa
import pyarrow.compute as pc
from _common import Timer, params_or_exit, parser

from rlhf import paths
from rlhf.io import write_json
from rlhf.policy import run_dpo
from rlhf.schemas import read_table, write_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--pairs", required=True)
    p.add_argument("--history", required=True, help="the previous iteration's train_pairs.parquet")
    p.add_argument("--out", required=True)
    p.add_argument("--train-pairs", required=True, help="where to record the pairs trained on")
    args = p.parse_args()
    params = params_or_exit(args.params)
    cfg = params.dpo
    pairs = read_table("pairs", args.pairs)
    if cfg.history == "accumulated":
        pairs = pa.concat_tables([read_table("pairs", args.history), pairs])
    summaries = {}
    with Timer(f"dpo@{args.iteration}"):
        for s in params.seeds:
            policy = paths.replicate(args.policy, s)
            ref = paths.replicate(args.sft, s) if cfg.reference == "sft" else policy
            mine = pairs.filter(pc.equal(pairs["seed"], s))
            summaries[str(s)] = run_dpo(
                cfg,
                policy,
                ref,
                mine,
                paths.replicate_out(args.out, s),
                f"{args.iteration}/seed_{s}",
            )
    write_table("pairs", pairs, args.train_pairs)
    write_json(paths.iteration_dir(args.iteration) / "dpo.json", {"by_seed": summaries})
    print({s: {k: v for k, v in m.items() if k != "log"} for s, m in summaries.items()})


if __name__ == "__main__":
    main()
