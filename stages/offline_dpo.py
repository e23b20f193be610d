"""Stage `offline_dpo`: the vanilla DPO baseline, from SFT on pairs of the offline mix (params:
offline_dpo: how many, how many passes), with the online DPO settings; one model per seed."""

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument("--out", default=str(paths.OFFLINE_DPO_MODEL))
    p.add_argument(
        "--curves", default=str(paths.curves("offline_dpo")), help="DVCLive curves folder"
    )
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.models.policy import run_offline_dpo
    from rlhf.online.loop import offline_pair_budget

    n_pairs = offline_pair_budget(params)
    prefs = read_table("preferences", args.mix)
    with Timer("offline_dpo"):
        summary = {
            str(s): run_offline_dpo(
                params.offline_dpo,
                params.dpo,
                n_pairs,
                args.sft,
                prefs,
                paths.replicate_out(args.out, s),
                s,
                paths.replicate_out(args.curves, s),
            )
            for s in params.seeds
        }
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "offline_dpo.json", {"by_seed": summary})
    print(summary)


if __name__ == "__main__":
    main()
