"""Tokenizer and model handling: a locally trained BPE tokenizer with a chat template, a tiny
Llama built from scratch, and loading of any Hugging Face model directory (never the hub by
default, never remote code)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

BOS, EOS, PAD = "<|bos|>", "<|im_end|>", "<|pad|>"
IM_START = "<|im_start|>"
SPECIAL_TOKENS = [PAD, BOS, IM_START, EOS]

# ChatML with {% generation %} markers around assistant answers, which TRL's
# assistant_only_loss needs to find the tokens to learn from.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts`, with ChatML special tokens and template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(
    tokenizer: PreTrainedTokenizerFast,
    hidden: int,
    layers: int,
    heads: int,
    max_len: int,
    seed: int,
) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_len,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return LlamaForCausalLM(cfg)


def _local(path: str | Path) -> dict:
    # Hub names stay an option for users with access; by default nothing is downloaded.
    offline = os.environ.get("RLHF_ALLOW_HUB", "0") != "1"
    return {"local_files_only": offline, "trust_remote_code": False}


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    tok = AutoTokenizer.from_pretrained(str(path), **_local(path))
    if tok.pad_token is None:
        # Reuse EOS for padding rather than adding a token (no embedding resize surprises).
        tok.pad_token = tok.eos_token
    return tok


def load_policy(path: str | Path) -> LlamaForCausalLM:
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **_local(path))
    return model


def load_reward_model(path: str | Path, pad_token_id: int | None = None):
    model = AutoModelForSequenceClassification.from_pretrained(
        str(path), num_labels=1, dtype=torch.float32, **_local(path)
    )
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
    return model


def save_model(model, tokenizer, out_dir: str | Path) -> None:
    """Save a model and tokenizer atomically (temporary folder, then rename)."""
    from rlhf.io import atomic_path

    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
