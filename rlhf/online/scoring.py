"""Batched reward-model scoring, each prompt + response rendered with the RM's own template;
an ensemble scores the mean of its members minus k times their spread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from rlhf.core.config import ScoreConfig
from rlhf.core.schemas import SCORED
from rlhf.models.checkpoints import (
    load_reward_model,
    load_tokenizer,
    reward_model_members,
    with_bos,
)


class RewardScorer:
    """Batched reward-model scores, rendering each prompt + response with the RM's own template."""

    def __init__(self, rm_dir: str | Path, batch_size: int = 64):
        dirs, self.conservative_k = reward_model_members(rm_dir)
        # Members share the start's tokenizer and template (rlhf.reward): one is read for all.
        self.tok = load_tokenizer(dirs[0])
        self.tok.padding_side = "right"
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.models = [
            load_reward_model(d, self.tok.pad_token_id).to(self.device).eval() for d in dirs
        ]
        self.batch_size = batch_size

    def render(self, prompt: list[dict], response: str) -> str:
        text = self.tok.apply_chat_template(
            prompt + [{"role": "assistant", "content": response}], tokenize=False
        )
        return with_bos(self.tok, text)

    def score(
        self, prompts: list[list[dict]], responses: list[str], desc: str = "score"
    ) -> np.ndarray:
        return self.combine(self.score_members(prompts, responses, desc))

    def combine(self, per_member: np.ndarray) -> np.ndarray:
        """One score per response from a (members, responses) array: mean - k * std."""
        return per_member.mean(0) - self.conservative_k * per_member.std(0)

    @torch.inference_mode()
    def score_members(
        self, prompts: list[list[dict]], responses: list[str], desc: str = "score"
    ) -> np.ndarray:
        """Each member's reward of each response, shape (members, responses)."""
        texts = [self.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        out = []
        for i in tqdm(range(0, len(texts), self.batch_size), desc=desc, unit="batch"):
            # render() wrote every special token (BOS included): add none, so none is doubled.
            enc = self.tok(
                texts[i : i + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            out.append(np.stack([m(**enc).logits[:, 0].float().cpu().numpy() for m in self.models]))
        return np.concatenate(out, axis=1) if out else np.zeros((len(self.models), 0))

    def n_tokens(self, responses: list[str]) -> list[int]:
        return [len(ids) for ids in self.tok(responses, add_special_tokens=False)["input_ids"]]


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
