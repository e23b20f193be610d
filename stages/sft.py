"""Stage `sft`: supervised fine-tuning on the world's demonstrations (assistant-only loss)."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--base", default=str(paths.BASE_MODEL))
    p.add_argument("--demos", default=str(paths.DEMONSTRATIONS))
    p.add_argument("--out", default=str(paths.SFT_MODEL))
    p.add_argument("--curves", default=str(paths.curves("sft")), help="DVCLive curves folder")
    args = p.parse_args()
    cfg = params_or_exit(args.params).sft
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.models.policy import run_sft

    with Timer("sft"):
        summary = run_sft(
            cfg, args.base, read_table("demonstrations", args.demos), args.out, Path(args.curves)
        )
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "sft.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
