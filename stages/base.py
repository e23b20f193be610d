"""Stage `base`: train the BPE tokenizer and pretrain a tiny Llama on world text, or copy an
existing Hugging Face model directory named by base.model_path."""

from _common import Timer, params_or_exit, parser

from rlhf import paths
from rlhf.io import write_json
from rlhf.models import load_policy, load_tokenizer, save_model
from rlhf.policy import build_base
from rlhf.schemas import read_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    p.add_argument("--out", default=str(paths.BASE_MODEL))
    p.add_argument("--max-texts", type=int, default=8000, help="pretraining conversations kept")
    args = p.parse_args()
    cfg = params_or_exit(args.params).base
    with Timer("base"):
        if cfg.model_path:
            save_model(load_policy(cfg.model_path), load_tokenizer(cfg.model_path), args.out)
            summary = {"copied_from": cfg.model_path}
        else:
            summary = build_base(cfg, read_table("preferences", args.mix), args.out, args.max_texts)
    write_json(paths.REPORTS_DIR / "train" / "base.json", summary)
    print(summary)


if __name__ == "__main__":
    main()
