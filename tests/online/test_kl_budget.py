"""The per-round KL budget: which budget a round gets, the prompts its checks sample, and a
budgeted round that stops where its recorded KL is the saved policy's, trains nothing when the
input already spent the budget, and leaves training untouched when it never binds."""

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from rlhf.core.config import ConfigError, parse_params
from rlhf.models.checkpoints import (
    load_policy,
    load_tokenizer,
    save_model,
    tiny_llama,
    train_tokenizer,
)
from rlhf.online.kl_budget import KLBudget, check_prompts, round_budget
from rlhf.online.loop import dpo_round

ITERS = {
    "iter_1": {"policy_in": "models/sft", "prompt_split": "train_1"},
    "iter_2": {"policy_in": "models/iter_1", "prompt_split": "train_2"},
}
QUESTIONS = ["what is 2 plus 2?", "what color is the fox?", "hi", "name a red fruit."]


def params(**sections):
    return parse_params({"iterations": ITERS, **sections})


def test_each_round_gets_its_entry_and_later_rounds_the_last():
    cfg = params(dpo={"kl_budget": [0.1, 0.25]}).dpo
    assert [round_budget(cfg, f"iter_{k}") for k in (1, 2, 3)] == [0.1, 0.25, 0.25]
    assert round_budget(params(dpo={"kl_budget": []}).dpo, "iter_1") is None


@pytest.mark.parametrize("bad", [[0.2, 0.1], [0.0, 0.1], [-1.0]])
def test_a_budget_must_be_positive_and_cumulative(bad):
    with pytest.raises(ConfigError, match="dpo.kl_budget"):
        params(dpo={"kl_budget": bad})


def test_check_prompts_come_from_the_reserve_split_mixing_categories():
    rows = [
        {"prompt_id": f"{split}-{cat}-{i}", "split": split, "category": cat,
         "messages": [{"role": "user", "content": f"{split} {cat} {i}"}]}
        for split in ("eval", "train_1", "reserve")
        for cat, n in (("reasoning", 30), ("chat", 3))
        for i in range(n)
    ]  # fmt: skip
    t = pa.Table.from_pylist(rows)
    got = check_prompts(t, 6, seed=0)
    texts = [m[0]["content"] for m in got]
    assert len(texts) == 6 and all(x.startswith("reserve ") for x in texts)
    assert sum(" chat " in x for x in texts) == 3  # taken in turn, not as the split's mix
    assert check_prompts(t, 6, seed=0) == got
    assert check_prompts(t, 6, seed=1) != got
    with pytest.raises(ConfigError, match="reserve"):
        check_prompts(t.filter(pc.not_equal(t["split"], "reserve")), 6, seed=0)


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("kl") / "sft"
    texts = QUESTIONS + ["it is 4.", "it is 5.", "it is red.", "it is blue.", "hello!", "go."]
    tok = train_tokenizer(texts * 20, 300)
    save_model(tiny_llama(tok, 32, 2, 2, 128, seed=0), tok, d)
    return d


def round_params(budget, lr=0.01, lora_rank=0):
    return params(
        seeds=[0],
        generate={"max_new_tokens": 12},
        dpo={
            "kl_budget": budget,
            "kl_check_every": 1,
            "train": {
                "epochs": 4.0,
                "lr": lr,
                "batch_size": 2,
                "warmup_ratio": 0.0,
                "lora_rank": lora_rank,
            },
        },
    )


def pair_table():
    texts = [
        ("what is 2 plus 2?", "it is 4.", "it is 5."),
        ("what color is the fox?", "it is red.", "it is blue."),
        ("hi", "hello!", "go."),
        ("name a red fruit.", "it is red.", "go."),
    ]
    return pa.Table.from_pylist(
        [
            {"seed": 0, "prompt": [{"role": "user", "content": p}], "chosen": c, "rejected": r}
            for p, c, r in texts * 2
        ]
    )


CHECKS = [[{"role": "user", "content": q}] for q in QUESTIONS]


def saved_kl(p, model_dir, sft_dir, name):
    cb = KLBudget(load_policy(sft_dir), load_tokenizer(sft_dir), CHECKS, 1.0, 1, p.generate, name)
    return cb.measure(load_policy(model_dir))


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
def test_a_budgeted_round_stops_early_and_records_the_saved_policys_kl(
    sft_dir, tmp_path, lora_rank
):
    # Under LoRA the budget measures against the adapters' base with them disabled (no copy).
    free = dpo_round(
        round_params([], lora_rank=lora_rank), "iter_1", sft_dir, sft_dir, pair_table(),
        tmp_path / "f",
    )  # fmt: skip
    full_steps = free["0"]["steps"]
    p = round_params([0.05], lora_rank=lora_rank)
    s = dpo_round(
        p, "iter_1", sft_dir, sft_dir, pair_table(), tmp_path / "b", CHECKS, tmp_path / "c"
    )["0"]
    assert s["kl_stopped"] and 0 < s["steps"] < full_steps
    assert s["kl_budget"] == 0.05 and s["kl_checks"][0] == [0, 0.0]
    assert [c[0] for c in s["kl_checks"]] == list(range(s["steps"] + 1))
    assert s["kl_reached"] == s["kl_checks"][-1][1] > 0
    # The round's training curves carry each check's KL at its step.
    with open(tmp_path / "c" / "seed_0" / "plots" / "metrics" / "kl_to_sft.tsv") as f:
        rows = [line.split("\t") for line in f.read().splitlines()[1:]]
    assert [[int(a), round(float(b), 6)] for a, b in rows] == s["kl_checks"][1:]
    # The number recorded is the KL of the policy saved, measured again from disk.
    again = saved_kl(p, tmp_path / "b" / "seed_0", sft_dir, "iter_1/seed_0")
    assert again == pytest.approx(s["kl_reached"], rel=1e-4, abs=1e-6)
    # The unbudgeted round went further from SFT than the budgeted one stopped.
    assert saved_kl(p, tmp_path / "f" / "seed_0", sft_dir, "iter_1/seed_0") > s["kl_reached"]


def test_a_round_whose_input_spent_the_budget_trains_no_step(sft_dir, tmp_path):
    p = round_params([0.01])
    dpo_round(round_params([]),
              "iter_1", sft_dir, sft_dir, pair_table(), tmp_path / "iter_1")  # fmt: skip
    s = dpo_round(p, "iter_2", tmp_path / "iter_1", sft_dir, pair_table(), tmp_path / "o", CHECKS)
    s = s["0"]
    assert s["steps"] == 0 and s["kl_stopped"] and s["kl_reached"] >= 0.01
    before = load_policy(tmp_path / "iter_1" / "seed_0").state_dict()
    after = load_policy(tmp_path / "o" / "seed_0").state_dict()
    assert all(torch.equal(before[k], v) for k, v in after.items())


def test_a_budget_that_never_binds_leaves_training_unchanged(sft_dir, tmp_path):
    free = dpo_round(round_params([]), "iter_1", sft_dir, sft_dir, pair_table(), tmp_path / "f")
    p = round_params([1000.0])
    s = dpo_round(p, "iter_1", sft_dir, sft_dir, pair_table(), tmp_path / "b", CHECKS)["0"]
    assert not s["kl_stopped"] and s["steps"] == free["0"]["steps"]
    a = load_policy(tmp_path / "f" / "seed_0").state_dict()
    b = load_policy(tmp_path / "b" / "seed_0").state_dict()
    assert all(torch.equal(a[k], v) for k, v in b.items())  # the checks draw no training RNG
