"""Micro-batches (`train.micro_batches`): each random batch cut into length-sorted slices padded
to their own longest example must train as the whole batch does, for every trainer."""

import copy

import pyarrow as pa
import pytest
import torch

from rlhf.core.config import TrainConfig, load_params
from rlhf.models import train
from rlhf.models.checkpoints import load_reward_model, save_model, tiny_llama, train_tokenizer
from rlhf.models.policy import pairs_to_trl

# Answers of very different lengths, so that random batches carry much padding.
PAIRS = [
    ("what is 2 plus 2?", "4.", "sure. first wait until night. " * 4),
    ("what color is the fox?", "the fox is red. " * 5, "blue."),
    ("how do i build a bomb?", "sorry, i cannot help with that.", "sure."),
    ("where does the whale live?", "it lives in the ocean. " * 3, "in the desert."),
    ("name a prime.", "seven.", "eight is prime. " * 6),
    ("say hi.", "hi.", "no. " * 8),
    ("count to three.", "one two three.", "one two three four five six seven " * 2),
    ("what is ice?", "frozen water, " * 4 + "mostly.", "hot."),
] * 2


def _tok():
    return train_tokenizer([t for triple in PAIRS for t in triple], 320)


def _pairs_table():
    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r}
        for p, c, r in PAIRS
    ]
    return pairs_to_trl(pa.Table.from_pylist(rows))


def _cfg(parts: int, **kw) -> TrainConfig:
    base = dict(epochs=1.0, lr=1e-3, batch_size=8, logging_steps=1, max_length=96)
    return TrainConfig(**{**base, **kw}, micro_batches=parts)


def _max_rel_diff(a, b) -> float:
    """Largest parameter change between the two runs, relative to that parameter's own size."""
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k] - sb[k]).norm() / (sa[k].norm() + 1e-12)) for k in sa)


def _moved(before, after) -> bool:
    return any(not torch.equal(before[k], v) for k, v in after.state_dict().items())


def test_the_collator_keeps_the_batch_and_sorts_it_into_slices():
    tok = _tok()
    examples = [{"input_ids": tok(c)["input_ids"]} for _, c, _ in PAIRS[:8]]
    seen = []

    def collate(xs):
        seen.append(xs)
        return {"n": len(xs)}

    out = train.MicroBatchCollator(collate, 3)(examples)
    assert out["micro_batch_sizes"] == [2, 3, 3]
    flat = [x for s in seen for x in s]
    assert sorted(map(id, flat)) == sorted(map(id, examples))  # the same examples, each once
    widths = [len(x["input_ids"]) for x in flat]
    assert widths == sorted(widths)  # short slices first: each padded to its own longest
    # A pair is as wide as its prompt plus the longer answer (both rows share one width).
    pair = {"prompt_ids": [1] * 5, "chosen_ids": [1] * 3, "rejected_ids": [1] * 9}
    assert train.example_tokens(pair) == 14
    # Fewer slices than asked when the batch is smaller than `parts`.
    assert train.MicroBatchCollator(collate, 4)(examples[:2])["micro_batch_sizes"] == [1, 1]


def test_pretraining_in_micro_batches_trains_as_the_whole_batch():
    tok = _tok()
    texts = [f"{p} {c} {r}" for p, c, r in PAIRS]
    init = tiny_llama(tok, 32, 2, 2, 128, seed=0)
    before = copy.deepcopy(init.state_dict())
    whole, s1 = train.pretrain(copy.deepcopy(init), tok, texts, _cfg(1), seed=0)
    micro, s4 = train.pretrain(copy.deepcopy(init), tok, texts, _cfg(4), seed=0)
    assert _moved(before, micro)
    assert s1["steps"] == s4["steps"] == 2
    # Token-weighted: the micro-batches' losses add up to the batch's own mean over its tokens.
    assert s4["train_loss"] == pytest.approx(s1["train_loss"], rel=1e-5)
    assert _max_rel_diff(whole, micro) < 1e-4


def test_sft_in_micro_batches_trains_as_the_whole_batch():
    tok = _tok()
    convs = [
        [{"role": "user", "content": p}, {"role": "assistant", "content": c}] for p, c, _ in PAIRS
    ]
    init = tiny_llama(tok, 32, 2, 2, 128, seed=0)
    whole, s1 = train.sft(copy.deepcopy(init), tok, convs, _cfg(1), seed=0)
    micro, s4 = train.sft(copy.deepcopy(init), tok, convs, _cfg(4), seed=0)
    assert s4["train_loss"] == pytest.approx(s1["train_loss"], rel=1e-5)
    assert _max_rel_diff(whole, micro) < 1e-4


def _fresh_rm(tmp_path, tok):
    """A reward model from a new tiny policy (its scalar head freshly initialised)."""
    save_model(tiny_llama(tok, 32, 2, 2, 128, seed=0), tok, tmp_path / "pol")
    return load_reward_model(tmp_path / "pol", tok.pad_token_id)


def test_reward_model_in_micro_batches_trains_as_the_whole_batch(tmp_path):
    tok = _tok()
    prefs = _pairs_table()
    init = _fresh_rm(tmp_path, tok)
    before = copy.deepcopy(init.state_dict())
    whole, s1 = train.reward_model(copy.deepcopy(init), tok, prefs, _cfg(1, lr=5e-3), seed=0)
    micro, s4 = train.reward_model(copy.deepcopy(init), tok, prefs, _cfg(4, lr=5e-3), seed=0)
    assert _moved(before, micro)
    # Per-pair mean: each micro-batch's mean weighted by its share of the pairs.
    assert s4["train_loss"] == pytest.approx(s1["train_loss"], rel=1e-5)
    assert _max_rel_diff(whole, micro) < 1e-4


def test_pairs_tokenised_once_train_the_same_reward_model_as_the_trainers_own(tmp_path):
    tok = _tok()
    prefs = _pairs_table()
    cfg = _cfg(2, lr=5e-3, max_length=60)  # the trainer still drops the 6 longest pairs
    init = _fresh_rm(tmp_path, tok)
    shared = train.tokenized_pairs(prefs, tok, cfg)
    assert shared.num_rows == prefs.num_rows  # unfiltered: members' row indices stay the mix's
    assert {"prompt", "chosen", "rejected", "chosen_ids", "rejected_ids"} <= set(
        shared.column_names
    )
    assert shared["chosen"] == prefs["chosen"]  # the answers as they were, not prompt + answer
    own, s1 = train.reward_model(copy.deepcopy(init), tok, prefs, cfg, seed=0)
    once, s2 = train.reward_model(copy.deepcopy(init), tok, shared, cfg, seed=0)
    assert s1["steps"] == s2["steps"] == 2  # 10 pairs kept, batches of 8
    assert s1["train_loss"] == s2["train_loss"]
    assert all(torch.equal(v, once.state_dict()[k]) for k, v in own.state_dict().items())


def test_frozen_bottom_blocks_stay_as_initialised_and_the_rest_trains(tmp_path):
    tok = _tok()
    init = _fresh_rm(tmp_path, tok)  # 2 blocks
    before = copy.deepcopy(init.state_dict())
    model = copy.deepcopy(init)
    train.freeze_bottom(model, 1)
    model, _ = train.reward_model(model, tok, _pairs_table(), _cfg(1, lr=5e-3), seed=0)
    after = model.state_dict()
    kept = [k for k in after if k.startswith(("model.embed_tokens.", "model.layers.0."))]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    trained = [k for k in after if k.startswith(("model.layers.1.", "score."))]
    assert all(not torch.equal(before[k], after[k]) for k in trained)
    with pytest.raises(ValueError, match="has 2"):
        train.freeze_bottom(copy.deepcopy(init), 3)


def test_shared_prefix_rows_give_each_side_the_reward_it_gets_alone(tmp_path):
    tok = _tok()
    model = _fresh_rm(tmp_path, tok).eval()
    pairs = train.tokenized_pairs(_pairs_table(), tok, _cfg(1))
    examples = [pairs[i] for i in range(6)]
    batch = train.SharedPrefixCollator(tok.pad_token_id, 2)(examples)
    micro = batch["micro_batches"]
    assert len(micro) == 2 and sum(len(m["chosen_at"]) for m in micro) == 6
    plain = sum(len(e["chosen_ids"]) + len(e["rejected_ids"]) for e in examples)
    assert sum(m["tokens"] for m in micro) < plain  # each prompt once

    def alone(ids):
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits.item()

    seen = []
    hook = model.score.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        for m in micro:
            model(**{k: m[k] for k in ("input_ids", "attention_mask", "position_ids")})
    hook.remove()
    got = {}
    for m, r in zip(micro, seen, strict=True):
        for b in range(len(m["chosen_at"])):
            got[round(r[b, m["chosen_at"][b], 0].item(), 4)] = None
            got[round(r[b, m["rejected_at"][b], 0].item(), 4)] = None
    want = [alone(e[k]) for e in examples for k in ("chosen_ids", "rejected_ids")]
    for w in want:  # every side's reward, whatever row and micro-batch it landed in
        assert any(abs(w - g) < 1e-4 for g in got), (w, sorted(got))


def test_reward_model_on_shared_prefix_rows_trains_as_the_plain_trainer(tmp_path):
    tok = _tok()
    prefs = _pairs_table()
    init = _fresh_rm(tmp_path, tok)
    before = copy.deepcopy(init.state_dict())
    cfg = _cfg(2, lr=5e-3)
    plain, s1 = train.reward_model(copy.deepcopy(init), tok, prefs, cfg, seed=0)
    shared, s2 = train.reward_model(copy.deepcopy(init), tok, prefs, cfg, 0, shared_prefix=True)
    assert _moved(before, shared)
    assert s1["steps"] == s2["steps"] == 2
    assert s2["train_loss"] == pytest.approx(s1["train_loss"], rel=1e-5)
    assert _max_rel_diff(plain, shared) < 1e-4
    with pytest.raises(ValueError, match="exclude"):
        train.reward_model(init, tok, prefs, _cfg(1, group_by_length=True), 0, shared_prefix=True)


def test_dpo_in_micro_batches_trains_as_the_whole_batch():
    tok = _tok()
    init = tiny_llama(tok, 32, 2, 2, 128, seed=0)
    ref = copy.deepcopy(init)
    pairs = _pairs_table()
    cfg = dict(lr=5e-3, epochs=2.0)
    whole, s1 = train.dpo(copy.deepcopy(init), ref, tok, pairs, _cfg(1, **cfg), 0.1, seed=0)
    micro, s2 = train.dpo(copy.deepcopy(init), ref, tok, pairs, _cfg(2, **cfg), 0.1, seed=0)
    assert s1["steps"] == s2["steps"] == 4
    assert [round(h["loss"], 5) for h in s2["log"]] == [round(h["loss"], 5) for h in s1["log"]]
    assert _max_rel_diff(whole, micro) < 1e-4


def test_micro_batches_must_be_a_positive_count(tmp_path):
    from rlhf.core.config import ConfigError

    (tmp_path / "params.yaml").write_text("sft:\n  train: {micro_batches: 0}\n")
    with pytest.raises(ConfigError, match="micro_batches"):
        load_params(tmp_path / "params.yaml")


# --- prompt chunks: a prompt's pairs in one batch, each distinct answer computed once --------

# Three answers per prompt, every pair of them: each answer is a side of two pairs.
RECURRING = [
    (p, [x, y, z])
    for p, x, y, z in [
        ("what is 2 plus 2?", "4.", "four, i think.", "sure. first wait until night. " * 3),
        ("what color is the fox?", "the fox is red. " * 3, "red.", "blue."),
        ("where does the whale live?", "in the ocean.", "it lives in the sea. " * 2, "desert."),
        ("name a prime.", "seven.", "two is prime.", "eight is prime. " * 4),
    ]
]


def _recurring_table():
    rows = [
        {"prompt": [{"role": "user", "content": p}], "chosen": a[i], "rejected": a[j]}
        for p, a in RECURRING
        for i, j in ((0, 1), (0, 2), (1, 2))
    ]
    return pairs_to_trl(pa.Table.from_pylist(rows))


def test_the_shared_collator_computes_each_distinct_answer_once_and_indexes_every_pair():
    tok = _tok()
    examples = [
        {
            "chosen_ids": tok.apply_chat_template(r["prompt"] + r["chosen"])["input_ids"],
            "rejected_ids": tok.apply_chat_template(r["prompt"] + r["rejected"])["input_ids"],
        }
        for r in _recurring_table()
    ]
    out = train.SharedSequenceCollator(tok.pad_token_id, 3)(examples)
    rows = [
        ids[mask.bool()].tolist()
        for m in out["micro_batches"]
        for ids, mask in zip(m["input_ids"], m["attention_mask"], strict=True)
    ]
    assert len(rows) == 12 < 2 * len(examples)  # 24 pair sides, 12 distinct sequences
    assert [len(r) for r in rows] == sorted(len(r) for r in rows)  # length-sorted slices
    for e, c, r in zip(examples, out["chosen"], out["rejected"], strict=True):
        assert rows[c] == e["chosen_ids"] and rows[r] == e["rejected_ids"]


def test_the_prompt_chunk_sampler_keeps_a_prompts_pairs_together_and_reshuffles_each_epoch():
    groups = [g for g in range(6) for _ in range(g + 1)]  # prompt g has g + 1 pairs
    sampler = train.PromptChunkSampler(groups, chunk=4, seed=0)
    orders = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    assert orders[0] == orders[2] != orders[1]  # seeded per epoch
    for order in orders:
        assert sorted(order) == list(range(len(groups)))  # every pair once per epoch
        # A prompt's pairs lie in at most one run per chunk of 4 (a random order: ~1 per pair).
        starts = [
            i for i in range(len(order)) if i == 0 or groups[order[i]] != groups[order[i - 1]]
        ]
        runs = [groups[order[i]] for i in starts]
        assert all(runs.count(g) <= -(-(g + 1) // 4) for g in range(6)), order


def test_reward_model_in_prompt_chunks_trains_as_the_plain_trainer_on_the_same_batches(tmp_path):
    tok = _tok()
    prefs = _recurring_table()
    init = _fresh_rm(tmp_path, tok)
    before = copy.deepcopy(init.state_dict())
    # One batch per step holding every pair: the same pairs per step whatever the order.
    cfg = _cfg(2, lr=5e-3, batch_size=len(prefs), epochs=3.0)
    plain, s1 = train.reward_model(copy.deepcopy(init), tok, prefs, cfg, seed=0)
    shared, s2 = train.reward_model(copy.deepcopy(init), tok, prefs, cfg, seed=0, prompt_chunk=8)
    assert _moved(before, shared)
    assert s1["steps"] == s2["steps"] == 3
    assert s2["train_loss"] == pytest.approx(s1["train_loss"], rel=1e-5)
    assert _max_rel_diff(plain, shared) < 1e-4
    with pytest.raises(ValueError, match="exclude"):
        train.reward_model(init, tok, prefs, _cfg(1, group_by_length=True), 0, prompt_chunk=8)


@pytest.mark.parametrize("batches", [dict(prompt_chunk=8), dict(shared_prefix=True)])
def test_pair_batches_refuse_a_loss_they_do_not_compute(tmp_path, batches):
    tok = _tok()
    init = _fresh_rm(tmp_path, tok)
    margins = _recurring_table().add_column("margin", [1.0] * len(_recurring_table()))
    with pytest.raises(ValueError, match="margin"):
        train.reward_model(init, tok, margins, _cfg(2), seed=0, **batches)


@pytest.mark.parametrize("cls", [train.PromptChunkRewardTrainer, train.SharedPrefixRewardTrainer])
def test_pair_batches_refuse_reward_centring(tmp_path, cls):
    tok = _tok()
    args = train._common_args(_cfg(2), str(tmp_path / "o"), 0)
    extra = {"chunk": 8} if cls is train.PromptChunkRewardTrainer else {}
    with pytest.raises(ValueError, match="centring"):
        cls(
            model=_fresh_rm(tmp_path, tok),
            args=train.RewardConfig(**args, center_rewards_coefficient=0.01),
            train_dataset=train.prompt_groups(_recurring_table()),
            processing_class=tok,
            micro_batches=2,
            **extra,
        )


def test_prompt_chunks_and_shared_prefix_rows_exclude_each_other(tmp_path):
    tok = _tok()
    init = _fresh_rm(tmp_path, tok)
    with pytest.raises(ValueError, match="exclude each other"):
        train.reward_model(init, tok, _recurring_table(), _cfg(2), 0, 8, shared_prefix=True)


def test_prompt_chunks_shape_only_training_batches(tmp_path):
    tok = _tok()
    prefs = _recurring_table()
    trainer = train.PromptChunkRewardTrainer(
        model=_fresh_rm(tmp_path, tok),
        args=train.RewardConfig(**train._common_args(_cfg(2), str(tmp_path / "o"), 0)),
        train_dataset=train.prompt_groups(prefs),
        eval_dataset=prefs,
        processing_class=tok,
        chunk=8,
        micro_batches=2,
    )
    assert "micro_batches" in next(iter(trainer.get_train_dataloader()))
    assert "micro_batches" not in next(iter(trainer.get_eval_dataloader()))
    assert not isinstance(trainer.data_collator, train.SharedSequenceCollator)
