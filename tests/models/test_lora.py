"""LoRA (PEFT through TRL) for SFT, the reward model and DPO, and DVCLive training curves."""

import csv
import json

import pyarrow as pa
import pytest
import torch

from rlhf.core.config import ConfigError, DPOStageConfig, TrainConfig, parse_params
from rlhf.models import train
from rlhf.models.checkpoints import (
    ADAPTER_DIR,
    load_policy,
    load_reward_model,
    save_model,
    tiny_llama,
    train_tokenizer,
)
from rlhf.models.policy import adapter_base, lora_policy, run_dpo
from rlhf.models.reward import run_reward_model

from .test_dpo import PAIRS, margin

LORA = dict(lora_rank=4, lora_alpha=8.0)


def _pairs() -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r}
            for p, c, r in PAIRS
        ]
    )


@pytest.fixture
def sft(tmp_path):
    tok = train_tokenizer([t for triple in PAIRS for t in triple], 320)
    save_model(tiny_llama(tok, 32, 2, 2, 128, seed=0), tok, tmp_path / "sft")
    return tmp_path / "sft", tok


def _series(folder, name):
    with open(folder / "plots" / "metrics" / f"{name}.tsv") as f:
        return [
            (int(r["step"]), float(r[name.split("/")[-1]]))
            for r in csv.DictReader(f, delimiter="\t")
        ]


def _logits(model, tok):
    ids = torch.tensor([tok("what color is the fox?", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model(ids).logits


def test_lora_dpo_moves_the_policy_saves_it_merged_and_keeps_sft_as_reference(sft, tmp_path):
    sft_dir, tok = sft
    # Gradient checkpointing on: under LoRA the frozen embeddings give it no gradient to
    # recompute through unless the trainer makes the inputs require one.
    cfg = DPOStageConfig(
        train=TrainConfig(
            epochs=3.0, lr=5e-3, batch_size=4, logging_steps=1, max_length=64,
            gradient_checkpointing=True, **LORA,
        )
    )  # fmt: skip
    base = load_policy(sft_dir)
    s1 = run_dpo(cfg, sft_dir, sft_dir, _pairs(), tmp_path / "it1", "a", curves=tmp_path / "c1")
    it1 = load_policy(tmp_path / "it1")  # a plain checkpoint: the adapters merged in
    assert type(it1) is type(base)
    assert sum(p.numel() for p in it1.parameters()) == sum(p.numel() for p in base.parameters())
    assert margin(it1, tok) > margin(base, tok) + 0.5
    assert adapter_base(tmp_path / "it1") == sft_dir.resolve()
    # Round 1 starts from its reference: the first step's implicit reward margin is 0.
    assert s1["log"][0]["rewards/margins"] == 0.0

    # Round 2 from iter_1 against SFT trains iter_1's adapters on; the reference is their base
    # with them disabled, i.e. SFT itself, not a copy of the adapters (TRL's own default).
    model, ref = lora_policy(cfg, tmp_path / "it1", sft_dir)
    assert ref is None
    with model.disable_adapter():
        assert torch.equal(_logits(model, tok), _logits(base, tok))
    assert torch.allclose(_logits(model, tok), _logits(it1, tok), atol=1e-4)
    s2 = run_dpo(cfg, tmp_path / "it1", sft_dir, _pairs(), tmp_path / "it2", "b")
    assert s2["log"][0]["rewards/margins"] > 0.1  # iter_1 already prefers the chosen answers
    assert margin(load_policy(tmp_path / "it2"), tok) > margin(it1, tok)

    # The curves: one row per step, the last loss is the summary's final value.
    loss = _series(tmp_path / "c1", "loss")
    assert [s for s, _ in loss] == list(range(1, s1["steps"] + 1))
    assert loss[-1][1] == pytest.approx(s1["final"]["loss"])
    assert _series(tmp_path / "c1", "rewards/margins")[-1][1] > 0
    assert not (tmp_path / "c1" / "metrics.json").exists()  # plot data only


def test_lora_sft_and_reward_model_train_adapters_and_save_plain_models(sft, tmp_path):
    sft_dir, tok = sft
    cfg = TrainConfig(epochs=2.0, lr=5e-3, batch_size=4, logging_steps=1, max_length=64, **LORA)
    convs = [
        [{"role": "user", "content": p}, {"role": "assistant", "content": c}] for p, c, _ in PAIRS
    ]
    base = load_policy(sft_dir)
    model, summary = train.sft(load_policy(sft_dir), tok, convs, cfg, 0, curves=tmp_path / "c")
    save_model(model, tok, tmp_path / "sft2")
    tuned = load_policy(tmp_path / "sft2")
    assert not torch.equal(_logits(tuned, tok), _logits(base, tok))
    assert (tmp_path / "sft2" / ADAPTER_DIR / "adapter_config.json").is_file()
    assert summary["final"]["loss"] == pytest.approx(_series(tmp_path / "c", "loss")[-1][1])

    from rlhf.core.config import RewardModelConfig

    rm_cfg = RewardModelConfig(ensemble=1, train=cfg)  # one RM: the adapter is what is tested
    prefs = pa.Table.from_pylist(
        [
            {
                "chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                "rejected": [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
            }
            for p, c, r in PAIRS
        ]
    )
    run_reward_model(rm_cfg, sft_dir, prefs, tmp_path / "rm", curves=tmp_path / "rc")
    rm = load_reward_model(tmp_path / "rm", tok.pad_token_id)
    spec = json.loads((tmp_path / "rm" / ADAPTER_DIR / "adapter_config.json").read_text())
    assert "score" in spec["modules_to_save"]  # the new scalar head trains in full
    enc = tok(
        [tok.apply_chat_template(c, tokenize=False) for c in prefs.column("chosen").to_pylist()],
        return_tensors="pt",
        padding=True,
    )
    rej = tok(
        [tok.apply_chat_template(c, tokenize=False) for c in prefs.column("rejected").to_pylist()],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        acc = (rm(**enc).logits > rm(**rej).logits).float().mean()
    assert acc >= 0.75
    assert _series(tmp_path / "rc", "accuracy")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"base": {"train": {"lora_rank": 8}}}, "base.train.lora_rank"),
        ({"dpo": {"train": {"lora_rank": 8, "lora_targets": " "}}}, "dpo.train.lora_targets"),
    ],
)
def test_lora_settings_that_cannot_work_are_refused(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)
