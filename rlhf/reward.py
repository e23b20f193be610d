"""Training the Bradley-Terry reward model (TRL RewardTrainer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from transformers import set_seed

from rlhf import train
from rlhf.config import RewardModelConfig
from rlhf.messages import to_trl_preference
from rlhf.models import PLAIN_CHAT_TEMPLATE, load_reward_model, load_tokenizer, save_model


def run_reward_model(
    cfg: RewardModelConfig, sft_dir: str | Path, prefs: pa.Table, out_dir: str | Path
) -> dict[str, Any]:
    """Train the RM from the SFT model, or from reward_model.model_path with that checkpoint's
    own tokenizer and chat template (the policy's and the RM's templates may differ: scoring
    renders every prompt + response with the RM's)."""
    init = cfg.model_path or sft_dir
    tok = load_tokenizer(init)
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    # The scalar head is new: initialise it from a seeded RNG (the Trainer seeds only later),
    # or every run trains a different reward model.
    set_seed(cfg.seed)
    model = load_reward_model(init, tok.pad_token_id)
    ds = datasets.Dataset(prefs.select(["chosen", "rejected"]))
    if cfg.max_pairs and len(ds) > cfg.max_pairs:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_pairs))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    model, summary = train.reward_model(model, tok, ds, cfg.train, cfg.seed)
    save_model(model, tok, out_dir)
    return {**summary, "pairs": len(ds), "initialised_from": str(init)}
