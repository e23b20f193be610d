"""Loop pieces on crafted data: pair selection, the chat template, the LC win-rate."""

import numpy as np
import pyarrow as pa
import pytest

from rlhf.core.config import PairsConfig
from rlhf.core.schemas import SCORED, validate
from rlhf.core.stats import length_controlled_win_rate
from rlhf.evaluation.rm_eval import _mean_corr
from rlhf.models.checkpoints import train_tokenizer
from rlhf.online.pairs import select_pairs

from ..conftest import scored_rows

PROMPT = [{"role": "user", "content": "what is 2 plus 2?"}]


def scored(groups, seed=0):
    rows = scored_rows("iter_1", groups, PROMPT, seed)
    return validate("scored", pa.Table.from_pylist(rows, schema=SCORED), "test")


def test_best_worst_picks_extremes_and_drops_ties_and_identical_texts():
    t = scored(
        {
            "a": [("four.", 0.2), ("4.", 0.9), ("five.", -0.5), ("six.", 0.1)],
            "b": [("same.", 0.3), ("same.", 0.1)],  # different rewards, identical text
            "c": [("x.", 0.5), ("y.", 0.5)],  # tied rewards
        }
    )
    pairs, report = select_pairs(PairsConfig(), "iter_1", t)
    rows = pairs.to_pylist()
    assert [(r["prompt_id"], r["chosen"], r["rejected"]) for r in rows] == [("a", "4.", "five.")]
    assert report["dropped"] == {"identical_responses": 1, "tied_rewards": 1}
    assert all(
        r["chosen"] != r["rejected"] and r["chosen_reward"] > r["rejected_reward"] for r in rows
    )


def test_pairs_are_selected_within_each_seed_replicate():
    # The same prompt in two replicates: one pair per (seed, prompt), never across seeds.
    t = pa.concat_tables(
        [
            scored({"a": [("good.", 0.9), ("bad.", -0.9)]}, seed=0),
            scored({"a": [("fine.", 0.4), ("poor.", 0.1)]}, seed=1),
        ]
    )
    pairs, report = select_pairs(PairsConfig(), "iter_1", t)
    got = sorted((r["seed"], r["chosen"], r["rejected"]) for r in pairs.to_pylist())
    assert got == [(0, "good.", "bad."), (1, "fine.", "poor.")]
    assert report["prompt_groups"] == 2 and report["drop_rate"] == 0.0


@pytest.mark.parametrize("selection", ["max_random", "random"])
def test_other_selections_keep_chosen_above_rejected(selection):
    t = scored(
        {f"p{i}": [(f"r{j}.", float((i * 7 + j * 3) % 5)) for j in range(6)] for i in range(20)}
    )
    pairs, _ = select_pairs(PairsConfig(selection=selection), "iter_1", t)
    rows = pairs.to_pylist()
    assert rows and all(r["chosen_reward"] > r["rejected_reward"] for r in rows)
    if selection == "max_random":
        best = {f"p{i}": max((i * 7 + j * 3) % 5 for j in range(6)) for i in range(20)}
        assert all(r["chosen_reward"] == best[r["prompt_id"]] for r in rows)


def test_chat_template_marks_only_assistant_answers():
    tok = train_tokenizer(["the fox is red.", "what is 2 plus 2?", "4."] * 50, 320)
    conv = PROMPT + [{"role": "assistant", "content": "4."}]
    enc = tok.apply_chat_template(
        conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = enc["input_ids"], enc["assistant_masks"]
    learned = tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert learned == "4.<|im_end|>"
    # No doubled BOS or other special token is added on tokenisation of a rendered template.
    text = tok.apply_chat_template(conv, tokenize=False)
    assert tok(text, add_special_tokens=False)["input_ids"] == ids


def test_lc_win_rate_removes_a_pure_length_effect():
    rng = np.random.default_rng(0)
    diff = rng.normal(0, 10, 4000)
    # Wins come only from being longer: at equal length the policy is no better than baseline.
    wins = (rng.random(4000) < 1 / (1 + np.exp(-diff / 5))).astype(float)
    assert wins.mean() == pytest.approx(0.5, abs=0.03)
    longer = diff + 8  # the same judge, the policy now 8 words longer on average
    wins_long = (rng.random(4000) < 1 / (1 + np.exp(-longer / 5))).astype(float)
    assert wins_long.mean() > 0.7
    assert length_controlled_win_rate(wins_long, longer) == pytest.approx(0.5, abs=0.05)


def test_mean_per_prompt_correlation_is_known_on_crafted_data():
    x = np.array([1, 2, 3, 4, 1, 2, 3, 4], float)
    y = np.array([2, 4, 6, 8, 4, 3, 2, 1], float)
    assert _mean_corr(x, y, 4) == pytest.approx(0.0)  # +1 and -1


def test_min_margin_drops_pairs_the_rm_barely_separates_and_counts_them():
    t = scored({"a": [("4.", 0.9), ("5.", 0.1)], "b": [("red.", 0.52), ("blue.", 0.5)]})
    pairs, report = select_pairs(PairsConfig(min_margin=0.05), "iter_1", t)
    assert [r["prompt_id"] for r in pairs.to_pylist()] == ["a"]
    assert report["dropped"] == {"small_margin": 1}
    kept, _ = select_pairs(PairsConfig(), "iter_1", t)
    assert kept.num_rows == 2  # the default keeps every untied pair


def test_kl_to_reference_is_zero_for_the_same_model_and_grows_with_a_change(tmp_path):
    import torch

    from rlhf.models.checkpoints import save_model, tiny_llama
    from rlhf.online.generation import kl_to_reference

    tok = train_tokenizer(["the fox is red.", "what is 2 plus 2?", "4."] * 50, 320)
    model = tiny_llama(tok, 32, 1, 2, 128, seed=0)
    save_model(model, tok, tmp_path / "ref")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(model, tok, tmp_path / "pol")
    prompts, responses = [PROMPT, PROMPT], ["4.", "the fox is red. 4."]
    same = kl_to_reference(tmp_path / "ref", tmp_path / "ref", prompts, responses)
    moved = kl_to_reference(tmp_path / "pol", tmp_path / "ref", prompts, responses)
    assert np.allclose(same, 0.0, atol=1e-6)
    assert (moved > 0).all()
    # Summed over the response's tokens: the longer response carries more of it.
    assert moved[1] > moved[0]


def test_an_off_control_trains_nothing_and_its_evaluation_says_why(tmp_path):
    """onpolicy_control.enabled=false (the default): the control stage writes no samples and a
    model folder that holds only the reason; the evaluate stage records it as skipped without
    loading a model, and the report reads no policy from it (tests/analytics/test_summary.py)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import pyarrow.parquet as pq

    from rlhf.core.config import parse_params
    from rlhf.core.io import skipped
    from rlhf.core.schemas import EVALUATIONS
    from rlhf.online.controls import OFF, onpolicy_control

    params = parse_params({})
    assert not params.onpolicy_control.enabled
    out = tmp_path / "models" / "onpolicy_dpo"
    missing = tmp_path / "absent"  # nothing is read: no SFT, RM or prompts exist
    scored_t, pairs, record = onpolicy_control(params, missing, missing, missing, out)
    assert record == {"skipped": OFF}
    assert scored_t.num_rows == 0 and pairs.num_rows == 0
    assert skipped(out) == OFF and [p.name for p in out.iterdir()] == ["skipped.json"]

    (tmp_path / "params.yaml").write_text("{}\n")
    stage = Path(__file__).resolve().parents[2] / "stages" / "evaluate.py"
    cmd = [sys.executable, str(stage), "--name", "onpolicy_dpo", "--policy", str(out)]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(tmp_path / "data" / "eval" / "onpolicy_dpo.parquet")
    assert table.num_rows == 0 and table.schema.equals(EVALUATIONS)
    metrics = json.loads((tmp_path / "reports" / "eval" / "onpolicy_dpo.json").read_text())
    assert metrics == {"skipped": OFF}

    on = parse_params({"onpolicy_control": {"enabled": True, "prompt_splits": []}})
    with pytest.raises(ValueError, match="no prompts"):  # on, it does run (and checks its input)
        onpolicy_control(on, missing, missing, missing, tmp_path / "m2")
