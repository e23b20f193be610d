"""Stage `dpo@<iteration>`: DPO from the iteration's input policy on its pairs (and, with
dpo.history=accumulated, the pairs of all earlier iterations)."""

import pyarrow as pa
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
    cfg = params_or_exit(args.params).dpo
    pairs = read_table("pairs", args.pairs)
    if cfg.history == "accumulated":
        pairs = pa.concat_tables([read_table("pairs", args.history), pairs])
    ref = args.sft if cfg.reference == "sft" else args.policy
    with Timer(f"dpo@{args.iteration}"):
        summary = run_dpo(cfg, args.policy, ref, pairs, args.out, args.iteration)
    write_table("pairs", pairs, args.train_pairs)
    write_json(paths.iteration_dir(args.iteration) / "dpo.json", summary)
    print({k: v for k, v in summary.items() if k != "log"})


if __name__ == "__main__":
    main()
