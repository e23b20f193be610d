import pyarrow as pa
import pytest

from rlhf.core.config import ConfigError, PromptsConfig
from rlhf.core.messages import prompt_id
from rlhf.core.schemas import write_table
from rlhf.prompts.splits import read_split, split_prompts
from rlhf.world.sources import prompt_pool


def test_splits_are_disjoint_deduped_stratified_and_sized(small_params):
    pool = pa.Table.from_pylist(prompt_pool(small_params.world))
    cfg = small_params.prompts
    table, report = split_prompts(cfg, pool)
    rows = table.to_pylist()
    ids = [r["prompt_id"] for r in rows]
    assert len(ids) == len(set(ids)) == report["unique_prompts"] < pool.num_rows
    assert report["duplicates_removed"] == pool.num_rows - len(ids)
    sizes = report["splits"]
    assert sizes["eval"] == cfg.eval_size
    assert all(sizes[f"train_{i}"] == cfg.slice_size for i in range(1, cfg.n_slices + 1))
    assert all(r["prompt_id"] == prompt_id(r["messages"]) for r in rows)
    # Every split carries every category (dedupe alone would starve the small ones).
    for split, cats in report["by_split_and_category"].items():
        if split != "reserve":
            assert set(cats) == {"chat", "chat-hard", "safety", "reasoning"}, split


def test_split_assignment_is_stable_when_the_pool_grows(small_params):
    pool = prompt_pool(small_params.world)
    cfg = PromptsConfig(eval_size=20, slice_size=20, n_slices=2)
    a, _ = split_prompts(cfg, pa.Table.from_pylist(pool))
    b, _ = split_prompts(cfg, pa.Table.from_pylist(pool))
    assert a.equals(b)
    c, _ = split_prompts(
        PromptsConfig(seed=1, eval_size=20, slice_size=20, n_slices=2), pa.Table.from_pylist(pool)
    )
    assert not a.equals(c)


def test_too_small_pool_is_a_clear_error(small_params):
    pool = pa.Table.from_pylist(prompt_pool(small_params.world)[:100])
    with pytest.raises(
        ConfigError,
        match=r"prompts: the splits need \d+ unique '\w[\w-]*' prompts but the pool has",
    ):
        split_prompts(PromptsConfig(eval_size=50, slice_size=50, n_slices=3), pool)


def test_read_split_selects_one_split_and_names_the_file_when_empty(tmp_path, small_params):
    table, report = split_prompts(
        small_params.prompts, pa.Table.from_pylist(prompt_pool(small_params.world))
    )
    path = tmp_path / "prompts.parquet"
    write_table("prompts", table, path)
    ev = read_split(path, "eval")
    assert ev.num_rows == report["splits"]["eval"] and set(ev.column("split").to_pylist()) == {
        "eval"
    }
    with pytest.raises(ValueError, match=r"prompts\.parquet: split 'train_9' has no prompts"):
        read_split(path, "train_9")


def test_an_eval_only_source_is_the_whole_eval_split(small_params):
    from rlhf.core.config import ExternalSource
    from rlhf.prompts.sources import build_pool

    # An MT-Bench question file: two turns each, the second a scripted follow-up.
    questions = [
        {"question_id": i, "category": "writing", "turns": [f"write about {w}", "now shorter"]}
        for i, w in enumerate(["rivers", "stones", "roads"])
    ]
    external = {"mtbench": ExternalSource(format="questions", path="x", eval_only=True)}
    from rlhf.core.schemas import PROMPT_POOL

    world = pa.Table.from_pylist(prompt_pool(small_params.world), schema=PROMPT_POOL)
    pool, _, _ = build_pool(world, external, lambda src: questions)
    cfg = PromptsConfig(eval_size=20, slice_size=20, n_slices=2, external=external)
    table, report = split_prompts(cfg, pool)
    ev = [r for r in table.to_pylist() if r["split"] == "eval"]
    assert sorted(r["messages"][-1]["content"] for r in ev) == [
        "write about rivers",
        "write about roads",
        "write about stones",
    ]
    assert all(r["follow_ups"] == ["now shorter"] for r in ev)
    # No benchmark prompt trains; the training slices keep their sizes.
    assert all(r["source"] != "mtbench" for r in table.to_pylist() if r["split"] != "eval")
    assert report["splits"]["train_1"] == report["splits"]["train_2"] == 20
