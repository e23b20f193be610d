"""DPO through TRL on a tiny model: the weights move and the chosen-rejected margin widens."""

import copy

import pytest
import torch

from rlhf.core.config import TrainConfig
from rlhf.models.checkpoints import tiny_llama, train_tokenizer
from rlhf.models.policy import pairs_to_trl
from rlhf.models.train import dpo

PAIRS = [
    ("what is 2 plus 2?", "2 plus 2 is 4.", "sure. first wait until night."),
    ("what color is the fox?", "the fox is red.", "the fox is blue. the fox is blue."),
    (
        "how do i build a bomb?",
        "sorry, i cannot help with that.",
        "sure. first get the right tools.",
    ),
    ("where does the whale live?", "it lives in the ocean.", "it lives in the desert."),
] * 4


def logp(model, tok, prompt, answer):
    conv = [{"role": "user", "content": prompt}]
    head = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(
        conv + [{"role": "assistant", "content": answer}], tokenize=False
    )
    h = tok(head, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([tok(full, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        lp = model(ids).logits.log_softmax(-1)[0, :-1].gather(1, ids[0, 1:, None])[:, 0]
    return float(lp[len(h) - 1 :].sum())


def margin(model, tok):
    return sum(logp(model, tok, p, c) - logp(model, tok, p, r) for p, c, r in PAIRS[:4]) / 4


@pytest.mark.parametrize("grouped", [False, True], ids=["random", "group_by_length"])
def test_dpo_changes_weights_and_widens_the_margin_on_its_pairs(grouped):
    import pyarrow as pa

    tok = train_tokenizer([t for triple in PAIRS for t in triple], 320)
    model = tiny_llama(tok, 32, 2, 2, 128, seed=0)
    ref = copy.deepcopy(model)
    before_w = {k: v.clone() for k, v in model.state_dict().items()}
    before = margin(model, tok)
    table = pa.Table.from_pylist(
        [
            {"prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r}
            for p, c, r in PAIRS
        ]
    )
    cfg = TrainConfig(
        epochs=3.0, lr=5e-3, batch_size=4, logging_steps=1, max_length=64, group_by_length=grouped
    )
    model, summary = dpo(model, ref, tok, pairs_to_trl(table), cfg, beta=0.1, seed=0)
    after = margin(model, tok)
    changed = sum(not torch.equal(before_w[k], v) for k, v in model.state_dict().items())
    assert changed > len(before_w) // 2
    assert after > before + 1.0, (before, after)
    assert summary["steps"] == 12


def test_offline_dpo_trains_its_own_epochs_on_its_pair_budget(tmp_path):
    import pyarrow as pa

    from rlhf.core.config import DPOStageConfig, OfflineDPOConfig
    from rlhf.models.checkpoints import save_model
    from rlhf.models.policy import run_offline_dpo

    tok = train_tokenizer([t for triple in PAIRS for t in triple], 320)
    save_model(tiny_llama(tok, 32, 2, 2, 128, seed=0), tok, tmp_path / "sft")
    prefs = pa.Table.from_pylist(
        [
            {
                "chosen": [{"role": "user", "content": p}, {"role": "assistant", "content": c}],
                "rejected": [{"role": "user", "content": p}, {"role": "assistant", "content": r}],
            }
            for p, c, r in PAIRS
        ]
    )
    dpo_cfg = DPOStageConfig(
        train=TrainConfig(epochs=2.0, lr=5e-3, batch_size=4, logging_steps=1, max_length=64)
    )

    def steps(epochs: float, n_pairs: int) -> dict:
        cfg = OfflineDPOConfig(n_pairs=n_pairs, epochs=epochs)
        out = tmp_path / f"off_{epochs}_{n_pairs}"
        return run_offline_dpo(cfg, dpo_cfg, n_pairs, tmp_path / "sft", prefs, out, 0)

    # 8 of the 16 pairs, batches of 4: one pass is 2 steps; 0 epochs means the loop's 2.
    assert (steps(1.0, 8)["steps"], steps(1.0, 8)["pairs"]) == (2, 8)
    assert steps(0.0, 8)["steps"] == 4
    assert steps(1.0, 16)["steps"] == 4
