"""The online iterative loop, one function per stage: base model, SFT, reward model,
generate -> score -> pairs -> DPO per iteration. Stages in ``stages/`` call these."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm
from transformers import set_seed

from rlhf import train
from rlhf.config import (
    BaseConfig,
    DPOStageConfig,
    GenerateConfig,
    PairsConfig,
    RewardModelConfig,
    ScoreConfig,
    SFTStageConfig,
)
from rlhf.generation import Sampling, make_backend
from rlhf.messages import to_trl_preference
from rlhf.models import (
    load_policy,
    load_reward_model,
    load_tokenizer,
    save_model,
    tiny_llama,
    train_tokenizer,
)
from rlhf.schemas import GENERATIONS, PAIRS, SCORED


def seeded(name: str, seed: int) -> int:
    """A 31-bit seed from (name, seed), stable across processes."""
    return random.Random(f"{seed}:{name}").getrandbits(31)


# --- base and SFT --------------------------------------------------------------------------


def build_base(
    cfg: BaseConfig, prefs: pa.Table, out_dir: str | Path, max_texts: int
) -> dict[str, Any]:
    """Train a BPE tokenizer and pretrain a tiny Llama on world conversations."""
    rows = prefs.select(["chosen", "rejected"]).to_pylist()
    convs = [r[k] for r in rows for k in ("chosen", "rejected")]
    random.Random(cfg.seed).shuffle(convs)
    convs = convs[:max_texts] if max_texts else convs
    tok = train_tokenizer((m["content"] for c in convs for m in c), cfg.vocab_size)
    texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
    model = tiny_llama(tok, cfg.hidden_size, cfg.layers, cfg.heads, cfg.max_position, cfg.seed)
    model, summary = train.pretrain(model, tok, texts, cfg.train, cfg.seed)
    save_model(model, tok, out_dir)
    return {**summary, "texts": len(texts), "params": sum(p.numel() for p in model.parameters())}


def run_sft(
    cfg: SFTStageConfig, base_dir: str | Path, demos: pa.Table, out_dir: str | Path
) -> dict[str, Any]:
    tok, model = load_tokenizer(base_dir), load_policy(base_dir)
    convs = demos.column("messages").to_pylist()
    model, summary = train.sft(model, tok, convs, cfg.train, cfg.seed)
    save_model(model, tok, out_dir)
    return {**summary, "examples": len(convs)}


# --- reward model ----------------------------------------------------------------------------


def run_reward_model(
    cfg: RewardModelConfig, sft_dir: str | Path, prefs: pa.Table, out_dir: str | Path
) -> dict[str, Any]:
    tok = load_tokenizer(sft_dir)
    # The scalar head is new: initialise it from a seeded RNG (the Trainer seeds only later),
    # or every run trains a different reward model.
    set_seed(cfg.seed)
    model = load_reward_model(sft_dir, tok.pad_token_id)
    ds = datasets.Dataset(prefs.select(["chosen", "rejected"]))
    if cfg.max_pairs and len(ds) > cfg.max_pairs:
        ds = ds.shuffle(seed=cfg.seed).select(range(cfg.max_pairs))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    model, summary = train.reward_model(model, tok, ds, cfg.train, cfg.seed)
    save_model(model, tok, out_dir)
    return {**summary, "pairs": len(ds)}


class RewardScorer:
    """Batched reward-model scores, rendering each prompt + response with the RM's own template."""

    def __init__(self, rm_dir: str | Path, batch_size: int = 64):
        self.tok = load_tokenizer(rm_dir)
        self.tok.padding_side = "right"
        self.model = load_reward_model(rm_dir, self.tok.pad_token_id).eval()
        self.batch_size = batch_size

    def render(self, prompt: list[dict], response: str) -> str:
        return self.tok.apply_chat_template(
            prompt + [{"role": "assistant", "content": response}], tokenize=False
        )

    @torch.inference_mode()
    def score(
        self, prompts: list[list[dict]], responses: list[str], desc: str = "score"
    ) -> np.ndarray:
        texts = [self.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        out = []
        for i in tqdm(range(0, len(texts), self.batch_size), desc=desc, unit="batch"):
            # The template already holds every special token: add none (no doubled BOS).
            enc = self.tok(
                texts[i : i + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            out.append(self.model(**enc).logits[:, 0].float().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def n_tokens(self, responses: list[str]) -> list[int]:
        return [len(ids) for ids in self.tok(responses, add_special_tokens=False)["input_ids"]]


# --- one iteration ------------------------------------------------------------------------------


def generate(
    cfg: GenerateConfig, iteration: str, policy_dir: str | Path, prompts: pa.Table
) -> pa.Table:
    backend = make_backend(cfg.backend, policy_dir, cfg.batch_prompts)
    seed = seeded(iteration, cfg.seed)
    s = Sampling(cfg.n, cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens, seed)
    msgs = prompts.column("messages").to_pylist()
    outs = backend.generate(msgs, s, desc=f"generate {iteration}")
    rows = []
    for pid, m, group in zip(prompts.column("prompt_id").to_pylist(), msgs, outs, strict=True):
        for k, c in enumerate(group):
            rows.append(
                {
                    "iteration": iteration,
                    "prompt_id": pid,
                    "sample_idx": k,
                    "prompt": m,
                    "response": c.text,
                    "n_tokens": c.n_tokens,
                    "finish_reason": c.finish_reason,
                    "policy": str(policy_dir),
                    "backend": backend.name,
                    "seed": seed,
                    "temperature": cfg.temperature,
                    "top_p": cfg.top_p,
                    "top_k": cfg.top_k,
                    "max_new_tokens": cfg.max_new_tokens,
                    "stop": backend.stop,
                }
            )
    return pa.Table.from_pylist(rows, schema=GENERATIONS)


def score(cfg: ScoreConfig, rm_dir: str | Path, gens: pa.Table) -> pa.Table:
    scorer = RewardScorer(rm_dir, cfg.batch_size)
    responses = gens.column("response").to_pylist()
    rewards = scorer.score(gens.column("prompt").to_pylist(), responses, desc="score")
    if cfg.length_unit == "chars":
        lengths = np.array([len(r) for r in responses], dtype=np.int64)
    else:
        lengths = np.array(scorer.n_tokens(responses), dtype=np.int64)
    penalized = rewards - cfg.length_penalty * lengths
    t = gens
    for name, values in (
        ("reward", rewards.astype(np.float64)),
        ("length", lengths),
        ("length_unit", [cfg.length_unit] * len(t)),
        ("length_penalty", [cfg.length_penalty] * len(t)),
        ("penalized_reward", penalized.astype(np.float64)),
    ):
        t = t.append_column(SCORED.field(name), pa.array(values, type=SCORED.field(name).type))
    return t


def select_pairs(
    cfg: PairsConfig, iteration: str, scored: pa.Table
) -> tuple[pa.Table, dict[str, Any]]:
    """Chosen/rejected per prompt by penalised reward; identical texts and ties dropped, counted."""
    rng = random.Random(f"{cfg.seed}:{iteration}:pairs")
    groups: dict[str, list[dict]] = {}
    for r in scored.select(
        ["prompt_id", "prompt", "response", "penalized_reward", "length", "sample_idx"]
    ).to_pylist():
        groups.setdefault(r["prompt_id"], []).append(r)
    pairs, drops = [], Counter()
    for pid in sorted(groups):
        g = sorted(groups[pid], key=lambda r: r["sample_idx"])
        if len(g) < 2:
            drops["single_response"] += 1
            continue
        by_reward = sorted(g, key=lambda r: (-r["penalized_reward"], r["sample_idx"]))
        if cfg.selection == "best_worst":
            c, r = by_reward[0], by_reward[-1]
        elif cfg.selection == "max_random":
            c, r = by_reward[0], rng.choice(by_reward[1:])
        else:
            a, b = rng.sample(g, 2)
            c, r = (a, b) if a["penalized_reward"] >= b["penalized_reward"] else (b, a)
        if c["response"].strip() == r["response"].strip():
            drops["identical_responses"] += 1
            continue
        if c["penalized_reward"] == r["penalized_reward"]:
            drops["tied_rewards"] += 1
            continue
        pairs.append(
            {
                "iteration": iteration,
                "prompt_id": pid,
                "prompt": c["prompt"],
                "chosen": c["response"],
                "rejected": r["response"],
                "chosen_reward": c["penalized_reward"],
                "rejected_reward": r["penalized_reward"],
                "chosen_length": c["length"],
                "rejected_length": r["length"],
                "selection": cfg.selection,
            }
        )
    report = {"prompts": len(groups), "pairs": len(pairs), "dropped": dict(sorted(drops.items()))}
    return pa.Table.from_pylist(pairs, schema=PAIRS), report


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


def run_dpo(
    cfg: DPOStageConfig,
    policy_dir: str | Path,
    ref_dir: str | Path,
    pairs: pa.Table,
    out_dir: str | Path,
    seed_name: str,
) -> dict[str, Any]:
    tok = load_tokenizer(policy_dir)
    model, ref = load_policy(policy_dir), load_policy(ref_dir)
    ds = pairs_to_trl(pairs)
    model, summary = train.dpo(
        model, ref, tok, ds, cfg.train, cfg.beta, seeded(seed_name, cfg.seed)
    )
    save_model(model, tok, out_dir)
    return {**summary, "pairs": len(ds), "reference": str(ref_dir)}
