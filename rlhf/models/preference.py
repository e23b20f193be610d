"""The pairwise preference model (paper section 2.3): a causal LM fine-tuned (TRL SFTTrainer,
rlhf.models.reward) to read `[CONTEXT] x [RESPONSE A] a [RESPONSE B] b` as a user turn and answer `A` or `B`.
P(A > B) is the probability of the `A` token against `B` at the answer's first position;
every comparison is made in both orders and averaged, which cancels a position bias."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from rlhf.core.config import PreferenceModelConfig
from rlhf.models.checkpoints import load_policy, load_tokenizer, with_bos

TEMPLATE = "[CONTEXT] {context} [RESPONSE A] {a} [RESPONSE B] {b}"
LABELS = ("A", "B")
# Saved beside the weights: how the model was prompted in training is how it is asked later.
SPEC_FILE = "preference.json"


def context_text(prompt: list[dict]) -> str:
    """A conversation up to the answer as one string: a single user turn as it is, a longer
    one with each turn on its own line behind its role."""
    if len(prompt) == 1:
        return prompt[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def pair_message(prompt: list[dict], a: str, b: str, max_chars: int) -> list[dict]:
    """The user turn that asks which of `a` (shown first) and `b` answers `prompt` better.
    A long context keeps its end (the question being answered), a long response its start."""
    ctx = context_text(prompt)
    text = TEMPLATE.format(context=ctx[-max_chars:], a=a[:max_chars], b=b[:max_chars])
    return [{"role": "user", "content": text}]


def training_conversations(
    prefs: pa.Table, cfg: PreferenceModelConfig, tok=None
) -> tuple[list[list[dict]], dict[str, int]]:
    """Each sampled pair of the mix twice, chosen first (label A) and second (label B); with a
    tokenizer, examples longer than cfg.train.max_length tokens are dropped (counted): their
    label would be cut off."""
    rows = prefs.select(["chosen", "rejected"]).to_pylist()
    if cfg.max_pairs and len(rows) > cfg.max_pairs:
        rows = random.Random(cfg.seed).sample(rows, cfg.max_pairs)
    convs = []
    for r in rows:
        prompt, c, j = r["chosen"][:-1], r["chosen"][-1]["content"], r["rejected"][-1]["content"]
        for a, b, label in ((c, j, "A"), (j, c, "B")):
            convs.append(
                pair_message(prompt, a, b, cfg.max_chars)
                + [{"role": "assistant", "content": label}]
            )
    counts = {"pairs": len(rows), "examples": len(convs), "too_long": 0}
    if tok is not None:
        rendered = tok.apply_chat_template(convs, tokenize=False)
        lengths = [len(ids) for ids in tok(rendered, add_special_tokens=False)["input_ids"]]
        kept = [c for c, n in zip(convs, lengths, strict=True) if n <= cfg.train.max_length]
        counts["too_long"] = len(convs) - len(kept)
        convs = kept
    counts["examples"] = len(convs)
    return convs, counts


@dataclass(frozen=True)
class Comparison:
    """A preference model's verdicts on pairs (a, b), each asked in both orders."""

    p_a_first: np.ndarray
    """P(first shown wins) with a shown first."""
    p_b_first: np.ndarray
    """P(first shown wins) with b shown first."""

    @property
    def p_a(self) -> np.ndarray:
        """P(a > b), averaged over both orders: a constant pull toward either position cancels."""
        return (self.p_a_first + 1.0 - self.p_b_first) / 2.0

    @property
    def position_bias(self) -> float:
        """Mean P(first shown wins) over both orders, minus 0.5: 0 for an unbiased judge."""
        return float(np.concatenate([self.p_a_first, self.p_b_first]).mean() - 0.5)

    @property
    def first_rate(self) -> float:
        """Share of one-order verdicts (P != 0.5) that pick the response shown first: 0.5 for
        an unbiased judge, 1.0 for one that always answers A."""
        p = np.concatenate([self.p_a_first, self.p_b_first])
        decided = p[p != 0.5]
        return float((decided > 0.5).mean()) if decided.size else 0.5


class PreferenceModel:
    """Batched P(A > B) from a trained preference model."""

    def __init__(self, model_dir: str | Path, batch_size: int = 32, device=None):
        spec_file = Path(model_dir) / SPEC_FILE
        if not spec_file.exists():
            raise ValueError(f"{model_dir}: not a preference model (no {SPEC_FILE})")
        max_chars = int(json.loads(spec_file.read_text())["max_chars"])
        self.tok = load_tokenizer(model_dir)
        self.tok.padding_side = "right"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_policy(model_dir).to(self.device).eval()
        self.batch_size, self.max_chars = batch_size, max_chars
        ids = [self.tok.encode(t, add_special_tokens=False) for t in LABELS]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"{model_dir}: the labels {LABELS} must be single tokens, got {ids}")
        self.label_ids = [i[0] for i in ids]

    def render(self, prompt: list[dict], a: str, b: str) -> str:
        msgs = pair_message(prompt, a, b, self.max_chars)
        text = self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return with_bos(self.tok, text)

    @torch.inference_mode()
    def p_first(
        self, prompts: list[list[dict]], a: list[str], b: list[str], desc: str = "preference"
    ) -> np.ndarray:
        """P(first shown wins) for each (prompt, a, b), a shown first, in input order."""
        texts = [self.render(p, x, y) for p, x, y in zip(prompts, a, b, strict=True)]
        out = np.zeros(len(texts), dtype=np.float64)
        for start in tqdm(range(0, len(texts), self.batch_size), desc=desc, unit="batch"):
            enc = self.tok(
                texts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            logits = self.model(**enc).logits
            # Right padding: each row's answer position is its last real token.
            last = enc["attention_mask"].sum(1) - 1
            rows = logits[torch.arange(len(last)), last][:, self.label_ids]
            out[start : start + len(last)] = torch.softmax(rows.double(), -1)[:, 0].cpu().numpy()
        return out

    def compare(
        self, prompts: list[list[dict]], a: list[str], b: list[str], desc: str = "preference"
    ) -> Comparison:
        return Comparison(
            self.p_first(prompts, a, b, f"{desc} (a first)"),
            self.p_first(prompts, b, a, f"{desc} (b first)"),
        )
