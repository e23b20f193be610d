"""Stage `reward_model`: Bradley-Terry reward model from the SFT model on the preference mix."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument(
        "--demos",
        default=str(paths.DEMONSTRATIONS),
        help="pretraining text for reward_model.base (with the mix)",
    )
    p.add_argument("--out", default=str(paths.REWARD_MODEL))
    p.add_argument(
        "--curves", default=str(paths.curves("reward_model")), help="DVCLive curves folder"
    )
    args = p.parse_args()
    cfg = params_or_exit(args.params).reward_model
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.models.reward import run_reward_model

    with Timer("reward_model"):
        demos = read_table("demonstrations", args.demos) if cfg.base.hidden_size else None
        summary = run_reward_model(
            cfg, args.sft, read_table("preferences", args.mix), args.out, demos, Path(args.curves)
        )
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "reward_model.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
