"""The loop's decisions, reachable without the stage scripts: the reference of each DPO round,
the pairs it trains on, the offline baseline's pair budget, one round per seed."""

import pyarrow as pa
import torch

from rlhf.core.config import parse_params
from rlhf.models.checkpoints import load_policy, save_model, tiny_llama, train_tokenizer
from rlhf.online.loop import dpo_round, offline_pair_budget, reference_for, training_pairs

ITERS = {"iter_1": {"policy_in": "models/sft", "prompt_split": "train_1"}}


def params(**sections):
    return parse_params({"iterations": ITERS, **sections})


def pairs(seed, texts):
    return pa.Table.from_pylist(
        [
            {"seed": seed, "prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r}
            for p, c, r in texts
        ]
    )


def test_reference_is_sft_by_default_and_the_input_policy_when_asked():
    assert str(reference_for(params().dpo, "models/iter_1", "models/sft")) == "models/sft"
    prev = params(dpo={"reference": "previous"}).dpo
    assert str(reference_for(prev, "models/iter_1", "models/sft")) == "models/iter_1"


def test_accumulated_history_trains_on_earlier_pairs_first():
    now, before = pairs(0, [("q2", "a", "b")]), pairs(0, [("q1", "a", "b")])
    fresh = training_pairs(params().dpo, now, before)
    assert fresh.num_rows == 1
    acc = training_pairs(params(dpo={"history": "accumulated"}).dpo, now, before)
    assert [m[0]["content"] for m in acc["prompt"].to_pylist()] == ["q1", "q2"]


def test_offline_budget_of_zero_pairs_is_one_iteration_of_pairs():
    assert offline_pair_budget(params(prompts={"slice_size": 40}, offline_dpo={"n_pairs": 0})) == 40
    assert offline_pair_budget(params(prompts={"slice_size": 40}, offline_dpo={"n_pairs": 7})) == 7


def test_a_round_trains_each_seed_on_its_own_pairs_against_its_reference(tmp_path):
    texts = {
        0: [("what is 2 plus 2?", "it is 4.", "it is 5.")] * 4,
        1: [("what color is the fox?", "it is red.", "it is blue."), ("hi", "hello!", "go.")] * 4,
    }
    tok = train_tokenizer([t for v in texts.values() for tr in v for t in tr], 300)
    save_model(tiny_llama(tok, 32, 2, 2, 128, seed=0), tok, tmp_path / "sft")
    p = params(
        seeds=[0, 1],
        dpo={"kl_budget": [], "train": {"epochs": 1.0, "lr": 0.005, "batch_size": 2}},
    )
    table = pa.concat_tables([pairs(s, t) for s, t in texts.items()])
    out = tmp_path / "iter_1"
    summaries = dpo_round(p, "iter_1", tmp_path / "sft", tmp_path / "sft", table, out)
    assert {s: m["pairs"] for s, m in summaries.items()} == {"0": 4, "1": 8}
    assert all(m["reference"] == str(tmp_path / "sft") for m in summaries.values())
    sft = load_policy(tmp_path / "sft").state_dict()
    for s in (0, 1):
        trained = load_policy(out / f"seed_{s}").state_dict()
        assert any(not torch.equal(sft[k], v) for k, v in trained.items())
