"""Training the Bradley-Terry reward model (TRL RewardTrainer)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from transformers import set_seed

from rlhf import train
from rlhf.config import RewardModelConfig
from rlhf.messages import to_trl_preference
from rlhf.models import PLAIN_CHAT_TEMPLATE, load_reward_model, load_tokenizer, save_model
from rlhf.policy import pretrain_new, world_conversations


def run_reward_model(
    cfg: RewardModelConfig,
    sft_dir: str | Path,
    prefs: pa.Table,
    out_dir: str | Path,
    demos: pa.Table | None = None,
) -> dict[str, Any]:
    """Train the RM from the SFT model, from reward_model.model_path with that checkpoint's
    own tokenizer and chat template (the policy's and the RM's templates may differ: scoring
    renders every prompt + response with the RM's), or, with reward_model.base.hidden_size,
    from a base of its own pretrained here on the mix's conversations and the demonstrations."""
    init = cfg.model_path or sft_dir
    tok = load_tokenizer(init)
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    own: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if cfg.base.hidden_size and not cfg.model_path:
            b = cfg.base
            convs = world_conversations(prefs, b.max_texts, cfg.seed)
            convs += demos.column("messages").to_pylist() if demos is not None else []
            lm, own = pretrain_new(
                tok, convs, b.hidden_size, b.layers, b.heads, 256, b.train, cfg.seed
            )
            init = Path(tmp) / "base"
            save_model(lm, tok, init)
        # The scalar head is new: initialise it from a seeded RNG (the Trainer seeds only
        # later), or every run trains a different reward model.
        set_seed(cfg.seed)
        model = load_reward_model(init, tok.pad_token_id)
    ds = datasets.Dataset(prefs.select(["chosen", "rejected"]))
    if cfg.max_pairs and len(ds) > cfg.max_pairs:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_pairs))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    model, summary = train.reward_model(model, tok, ds, cfg.train, cfg.seed)
    save_model(model, tok, out_dir)
    if own:
        return {**summary, "pairs": len(ds), "initialised_from": "own base", "own_base": own}
    return {**summary, "pairs": len(ds), "initialised_from": str(init)}
