"""Stage `onpolicy_dpo`: the on-policy offline control. SFT's samples on fresh prompt splits,
labelled once by the reward model, one DPO run from SFT per seed (rlhf.online.controls)."""

import sys
from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.io import write_json
from rlhf.core.schemas import write_table
from rlhf.core.shards import clear


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument(
        "--pm",
        default=str(paths.PREFERENCE_MODEL),
        help="ranker under score.ranker=preference_model",
    )
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument("--out", default=str(paths.ONPOLICY_DPO_MODEL))
    p.add_argument(
        "--curves", default=str(paths.curves("onpolicy_dpo")), help="DVCLive curves folder"
    )
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.online.controls import onpolicy_control
    from rlhf.world.annotator import ranker

    with Timer("onpolicy_dpo"):
        scored, pairs, record = onpolicy_control(
            params, args.sft, args.rm, args.prompts, args.out, args.pm, ranker(params),
            Path(args.curves),
        )  # fmt: skip
    write_table("scored", scored, paths.CONTROL_DIR / "scored.parquet")
    write_table("pairs", pairs, paths.CONTROL_DIR / "pairs.parquet")
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "onpolicy_dpo.json", record)
    clear(paths.shards("onpolicy_dpo"))
    print(record)


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:  # found only when used: an engine that fails (backend server)
        sys.exit(f"error: {e}")
