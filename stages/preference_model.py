"""Stage `preference_model`: the pairwise preference model (paper section 2.3), fine-tuned from
the SFT model on the preference mix, each pair in both orders with the label `A` or `B`."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument("--out", default=str(paths.PREFERENCE_MODEL))
    p.add_argument(
        "--curves", default=str(paths.curves("preference_model")), help="DVCLive curves folder"
    )
    args = p.parse_args()
    cfg = params_or_exit(args.params).preference_model
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.models.reward import run_preference_model

    with Timer("preference_model"):
        summary = run_preference_model(
            cfg, args.sft, read_table("preferences", args.mix), args.out, Path(args.curves)
        )
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "preference_model.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
