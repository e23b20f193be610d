"""Training the preference signals: the Bradley-Terry reward model (TRL RewardTrainer), alone
or as an ensemble, and the pairwise preference model (TRL SFTTrainer on A/B labels)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
from transformers import set_seed

from rlhf.core.config import PreferenceModelConfig, RewardModelConfig
from rlhf.core.io import atomic_path, is_main_process
from rlhf.core.messages import to_trl_preference
from rlhf.models import train
from rlhf.models.checkpoints import (
    ENSEMBLE_FILE,
    PLAIN_CHAT_TEMPLATE,
    load_policy,
    load_reward_model,
    load_tokenizer,
    save_model,
)
from rlhf.models.policy import pretrain_new, world_conversations
from rlhf.models.preference import LABELS, SPEC_FILE, TEMPLATE, training_conversations

MEMBER_SEED_STRIDE = 1000
"""Member i of an ensemble trains with seed + 1000 i: distinct from every other replicate's
reward_model.seed (small integers), and member 0 is the single RM of the same seed."""


def member_seeds(cfg: RewardModelConfig) -> list[int]:
    return [cfg.seed + MEMBER_SEED_STRIDE * i for i in range(cfg.ensemble)]


def member_rows(cfg: RewardModelConfig, n: int, i: int) -> list[int] | None:
    """Rows of the `n` pairs that member `i` trains on under reward_model.member_share (None:
    all of them): a window of round(share * n) rows starting at i * n / ensemble of one
    permutation seeded by reward_model.seed, wrapping around, so that every pair is in equally
    many members (up to rounding) and 1 / ensemble gives disjoint parts."""
    if cfg.member_share >= 1.0:
        return None
    order = np.random.default_rng(cfg.seed).permutation(n)
    size = max(1, round(cfg.member_share * n))
    start = (i * n) // cfg.ensemble
    return sorted(int(order[(start + k) % n]) for k in range(size))


def run_reward_model(
    cfg: RewardModelConfig,
    sft_dir: str | Path,
    prefs: pa.Table,
    out_dir: str | Path,
    demos: pa.Table | None = None,
    curves: Path | None = None,
) -> dict[str, Any]:
    """Train the RM from the SFT model, from reward_model.model_path with that checkpoint's
    own tokenizer and chat template (the policy's and the RM's templates may differ: scoring
    renders every prompt + response with the RM's), or, with reward_model.base.hidden_size,
    from a base of its own pretrained here on the mix's conversations and the demonstrations.
    With reward_model.ensemble > 1, that many members from the same start, each with its own
    seed, saved side by side with an `ensemble.json` that rlhf.online.scoring reads. `curves`:
    the DVCLive folder (an ensemble's members and an own base each in a subfolder)."""

    def sub(name: str) -> Path | None:
        return None if curves is None else Path(curves) / name

    init = cfg.model_path or sft_dir
    tok = load_tokenizer(init)
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    ds = datasets.Dataset(prefs.select(["chosen", "rejected"]))
    if cfg.max_pairs and len(ds) > cfg.max_pairs:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_pairs))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    if cfg.frozen_layers and cfg.train.lora_rank:
        raise ValueError("reward_model.frozen_layers is for full fine-tuning, not LoRA")
    ds = train.tokenized_pairs(ds, tok, cfg.train)  # once for every member
    own: dict[str, Any] = {}
    members: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, atomic_path(out_dir) as out:
        if cfg.base.hidden_size and not cfg.model_path:
            b = cfg.base
            convs = world_conversations(prefs, b.max_texts, cfg.seed)
            convs += demos.column("messages").to_pylist() if demos is not None else []
            lm, own = pretrain_new(
                tok, convs, b.hidden_size, b.layers, b.heads, 256, b.train, cfg.seed,
                curves=sub("own_base"),
            )  # fmt: skip
            init = Path(tmp) / "base"
            save_model(lm, tok, init)
        for i, seed in enumerate(member_seeds(cfg)):
            # The scalar head is new: initialise it from a seeded RNG (the Trainer seeds only
            # later), or every run trains a different reward model.
            set_seed(seed)
            model = load_reward_model(init, tok.pad_token_id)
            train.freeze_bottom(model, cfg.frozen_layers)
            name = f"member_{i}"
            rows = member_rows(cfg, len(ds), i)
            part = ds if rows is None else ds.select(rows)
            model, summary = train.reward_model(
                model, tok, part, cfg.train, seed, prompt_chunk=cfg.prompt_chunk,
                shared_prefix=cfg.shared_prefix,
                curves=curves if cfg.ensemble == 1 else sub(name),
            )  # fmt: skip
            save_model(model, tok, out if cfg.ensemble == 1 else out / name)
            members.append({"name": name, "seed": seed, **summary})
            if rows is not None:
                members[-1]["pairs"] = len(part)
        if cfg.ensemble > 1 and is_main_process():
            spec = {"members": [m["name"] for m in members], "conservative_k": cfg.conservative_k}
            (out / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    result: dict[str, Any] = {"pairs": len(ds)}
    if cfg.ensemble == 1:
        result.update({k: v for k, v in members[0].items() if k not in ("name", "seed")})
    else:
        result["members"] = members
        result["conservative_k"] = cfg.conservative_k
    if own:
        return {**result, "initialised_from": "own base", "own_base": own}
    return {**result, "initialised_from": str(init)}


def run_preference_model(
    cfg: PreferenceModelConfig,
    sft_dir: str | Path,
    prefs: pa.Table,
    out_dir: str | Path,
    curves: Path | None = None,
) -> dict[str, Any]:
    """Fine-tune the SFT model (or cfg.model_path) into a pairwise preference model."""
    init = cfg.model_path or sft_dir
    tok, model = load_tokenizer(init), load_policy(init)
    convs, counts = training_conversations(prefs, cfg, tok)
    model, summary = train.sft(model, tok, convs, cfg.train, cfg.seed, curves=curves)
    with atomic_path(out_dir) as out:
        save_model(model, tok, out)
        if is_main_process():
            spec = {"template": TEMPLATE, "labels": list(LABELS), "max_chars": cfg.max_chars}
            (out / SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    return {**summary, **counts, "initialised_from": str(init)}
