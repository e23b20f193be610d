"""Stage `offline_dpo`: the vanilla DPO baseline, from SFT on pairs of the offline mix, with the
online DPO settings and as many pairs as one iteration's prompt slice."""

import datasets
from _common import Timer, params_or_exit, parser

from rlhf import paths
from rlhf.io import write_json
from rlhf.messages import to_trl_preference
from rlhf.models import load_policy, load_tokenizer, save_model
from rlhf.schemas import read_table
from rlhf.seeds import seeded
from rlhf.train import dpo


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument("--out", default=str(paths.OFFLINE_DPO_MODEL))
    args = p.parse_args()
    params = params_or_exit(args.params)
    cfg = params.offline_dpo
    n = cfg.n_pairs or params.prompts.slice_size
    ds = datasets.Dataset(read_table("preferences", args.mix).select(["chosen", "rejected"]))
    ds = ds.shuffle(seed=cfg.seed).select(range(min(n, len(ds))))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    tok = load_tokenizer(args.sft)
    with Timer("offline_dpo"):
        model, summary = dpo(
            load_policy(args.sft),
            load_policy(args.sft),
            tok,
            ds,
            params.dpo.train,
            params.dpo.beta,
            seeded("offline_dpo", cfg.seed),
        )
        save_model(model, tok, args.out)
    write_json(
        paths.REPORTS_DIR / "train" / "offline_dpo.json",
        {**{k: v for k, v in summary.items() if k != "log"}, "pairs": len(ds)},
    )
    print(summary["train_loss"], len(ds))


if __name__ == "__main__":
    main()
