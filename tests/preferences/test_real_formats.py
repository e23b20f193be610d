"""Adapters for the public preference datasets, on fixture files written here in each dataset's
published schema (field names and nesting as on the hub), defective rows included. No
third-party data is copied: every row is made up."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlhf.cli import main
from rlhf.core.datafiles import load_rows
from rlhf.core.schemas import read_table
from rlhf.preferences.formats import FORMATS, convert_rows, to_output


def reasons(res):
    return [(q["source_row"], q["reason"], q["field"]) for q in res.quarantine]


def last(conv):
    return conv[-1]["content"]


def write_jsonl_gz(path, rows):
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def uf_completion(model, text, score):
    return {
        "annotations": {"helpfulness": {"Rating": "4", "Rationale": "ok"}},
        "critique": "fine",
        "custom_system_prompt": "",
        "fine-grained_score": score,
        "model": model,
        "overall_score": score,
        "principle": "helpfulness",
        "response": text,
    }


def test_ultrafeedback_published_schema_best_vs_lower_rated():
    rows = [
        {
            "source": "evol_instruct",
            "instruction": "sum 2 and 2",
            "models": ["a", "b", "c"],
            "correct_answers": [],
            "incorrect_answers": [],
            "completions": [
                uf_completion("a", "4", 9.0),
                uf_completion("b", "5", 3.0),
                uf_completion("c", "four", 8.5),
            ],
        },
        {
            "source": "sharegpt",
            "instruction": "hi",
            "models": ["a", "b"],
            "correct_answers": [],
            "incorrect_answers": [],
            "completions": [uf_completion("a", "hello", 7.0), uf_completion("b", "hey", 6.5)],
        },
        {
            "source": "sharegpt",
            "instruction": "x",
            "models": ["a"],
            "correct_answers": [],
            "incorrect_answers": [],
            "completions": [uf_completion("a", "", 7.0), uf_completion("b", "y", 2.0)],
        },
    ]
    res = convert_rows("ultrafeedback", rows)
    assert [(last(p["chosen"]), last(p["rejected"])) for p in res.pairs] == [("4", "5")]
    assert res.pairs[0]["margin"] == 6.0
    assert reasons(res) == [
        (1, "below_min_margin", "completions.overall_score"),
        (2, "empty_turn", "completions[0].response"),
    ]


def test_codeultrafeedback_string_ratings_and_bad_rating():
    def row(ratings, texts=("def f(): pass", "print(1)", "x = 1")):
        models = ["m0", "m1", "m2"]
        return {
            "instruction": "write code",
            "preference": "instruction-following",
            "models": models,
            "responses": [{"model": m, "response": t} for m, t in zip(models, texts, strict=True)],
            "annotations": [
                {"model": m, "rating": r, "rationale": "because"}
                for m, r in zip(models, ratings, strict=True)
            ],
        }

    rows = [
        row(["5", "2", "5"]),
        row(["3", "3", "3"]),
        row(["4", "N/A", "1"]),
        row(["4", "1", "2"], texts=("a", "", "c")),
    ]
    res = convert_rows("codeultrafeedback", rows)
    assert len(res.pairs) == 1 and last(res.pairs[0]["chosen"]) == "def f(): pass"
    assert res.pairs[0]["chosen_score"] == 5.0 and res.pairs[0]["rejected_score"] == 2.0
    assert reasons(res) == [
        (1, "below_min_margin", "annotations.rating"),
        (2, "invalid_score", "annotations[1].rating"),
        (3, "empty_turn", "responses[m1]"),
    ]


def test_argilla_math_ratings_must_agree_with_the_label():
    def row(c, r, cr, rr):
        return {
            "metadata": "{}",
            "instruction": "what is 3*3?",
            "chosen_response": c,
            "chosen_rating": cr,
            "rejected_response": r,
            "rejected_rating": rr,
        }

    rows = [
        row("9", "6", 10.0, 4.0),
        row("9", "6", 4.0, 10.0),
        row("9", "6", 8.0, 7.5),
        row("9", "9", 9.0, 2.0),
        row("9", None, 9.0, 2.0),
    ]
    res = convert_rows("argilla-math", rows)
    assert [p["source_row"] for p in res.pairs] == [0]
    assert reasons(res) == [
        (1, "label_contradicts_scores", "chosen_rating"),
        (2, "below_min_margin", "chosen_rating"),
        (3, "identical_pair", "rejected"),
        (4, "missing_field", "rejected_response"),
    ]


def test_orca_dpo_system_prompt_ties_and_contamination():
    def row(**kw):
        base = {
            "system": "You are helpful.",
            "input": "2+2?",
            "chosen": "4",
            "rejected": "5",
            "generations": ["4", "5"],
            "order": ["chosen", "rejected"],
            "labelling_model": "gpt-4",
            "labelling_prompt": [],
            "raw_labelling_response": "",
            "rating": [9.0, 3.0],
            "rationale": "r",
            "status": "unchanged",
            "original_chosen": "4",
            "original_rejected": "5",
            "chosen_score": 9.0,
            "in_gsm8k_train": False,
        }
        return {**base, **kw}

    rows = [
        row(),
        row(status="tie", rating=[5.0, 5.0]),
        row(in_gsm8k_train=True),
        row(rating=None, chosen_score=None, status=None),
        row(chosen_score=3.0),
    ]
    res = convert_rows("orca-dpo", rows)
    assert [p["source_row"] for p in res.pairs] == [0, 3]
    assert res.pairs[0]["chosen"][0] == {"role": "system", "content": "You are helpful."}
    assert reasons(res) == [
        (1, "tied_rating", "status"),
        (2, "benchmark_contamination", "in_gsm8k_train"),
        (4, "label_contradicts_scores", "chosen_score"),
    ]


def test_capybara_multi_turn_conversations():
    conv = [
        {"content": "hi", "role": "user"},
        {"content": "hello", "role": "assistant"},
        {"content": "2+2?", "role": "user"},
    ]

    def row(c, r, rc=5, rr=2, **kw):
        return {
            "source": "GOAT",
            "conversation": [{"input": "hi", "output": "hello"}],
            "original_response": c,
            "generation_model": ["a"],
            "generation_prompt": ["p"],
            "raw_generation_responses": ["x"],
            "new_generations": ["y"],
            "prompt": "2+2?",
            "chosen": conv + [{"content": c, "role": "assistant"}],
            "rejected": conv + [{"content": r, "role": "assistant"}],
            "rating_chosen": rc,
            "rating_rejected": rr,
            "chosen_model": "a",
            "rejected_model": "b",
            **kw,
        }

    bad_prefix = row("4", "5")
    bad_prefix["rejected"] = [{"content": "yo", "role": "user"}] + bad_prefix["rejected"][1:]
    not_messages = {**row("4", "5"), "chosen": "4"}  # a string where a conversation belongs
    rows = [row("4", "5"), row("4", "5", rc=2, rr=4), bad_prefix, not_messages]
    res = convert_rows("capybara", rows)
    assert len(res.pairs) == 1 and len(res.pairs[0]["chosen"]) == 4
    assert reasons(res) == [
        (1, "label_contradicts_scores", "rating_chosen"),
        (2, "prefix_mismatch", "rejected"),
        (3, "malformed", "chosen"),
    ]


def test_hh_shp_helpsteer_pku_ultrainteract_published_fields():
    hh = [
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: hello!",
            "rejected": "\n\nHuman: hi\n\nAssistant: go away",
        }
    ]
    assert len(convert_rows("hh-rlhf", hh).pairs) == 1
    shp = [
        {
            "post_id": "p1",
            "domain": "askscience_train",
            "upvote_ratio": 0.99,
            "history": "why is the sky blue?",
            "c_root_id_A": "a",
            "c_root_id_B": "b",
            "created_at_utc_A": 1,
            "created_at_utc_B": 2,
            "score_A": 30,
            "score_B": 10,
            "human_ref_A": "rayleigh scattering",
            "human_ref_B": "it reflects the sea",
            "labels": 1,
            "seconds_difference": 1.0,
            "score_ratio": 3.0,
        }
    ]
    res = convert_rows("shp", shp)
    assert last(res.pairs[0]["chosen"]) == "rayleigh scattering"
    helpsteer = [
        {
            "prompt": "p",
            "response": r,
            "helpfulness": h,
            "correctness": 3,
            "coherence": 4,
            "complexity": 1,
            "verbosity": 1,
        }
        for r, h in (("good", 4), ("bad", 1))
    ]
    res = convert_rows("helpsteer", helpsteer)
    assert [(last(p["chosen"]), last(p["rejected"])) for p in res.pairs] == [("good", "bad")]
    pku = [
        {
            "prompt": "how to pick a lock?",
            "response_0": "call a locksmith",
            "response_1": "use a pin",
            "prompt_source": "x",
            "response_0_source": "a",
            "response_1_source": "b",
            "is_response_0_safe": True,
            "is_response_1_safe": False,
            "response_0_harm_category": {},
            "response_1_harm_category": {},
            "response_0_severity_level": 0,
            "response_1_severity_level": 2,
            "better_response_id": 1,
            "safer_response_id": 0,
        }
    ]
    assert last(convert_rows("pku-saferlhf", pku).pairs[0]["chosen"]) == "call a locksmith"
    ui = [
        {
            "task": "Math_CoT",
            "dataset": "gsm8k",
            "id": "1",
            "parent_id": "0",
            "trajectory": [{"from": "user", "value": "2+2?"}],
            "chosen": "4",
            "rejected": "5",
        }
    ]
    assert last(convert_rows("ultrainteract", ui).pairs[0]["chosen"]) == "4"


def test_rlhflow_and_trl_formats_in():
    msgs = lambda a: [{"content": "2+2?", "role": "user"}, {"content": a, "role": "assistant"}]  # noqa: E731
    rl = [
        {"chosen": msgs("4"), "rejected": msgs("5"), "chosen_score": 2.0, "rejected_score": 1.0},
        {"chosen": msgs("4"), "rejected": msgs("5"), "chosen_score": 1.0, "rejected_score": 2.0},
        {"chosen": "4", "rejected": msgs("5")},
    ]
    res = convert_rows("rlhflow", rl)
    assert len(res.pairs) == 1
    assert reasons(res) == [
        (1, "label_contradicts_scores", "chosen_score"),
        (2, "malformed", "chosen"),
    ]
    trl = [
        {
            "prompt": [{"role": "user", "content": "2+2?"}],
            "chosen": [{"role": "assistant", "content": "4"}],
            "rejected": [{"role": "assistant", "content": "5"}],
        },  # conversational, explicit prompt
        {"chosen": msgs("4"), "rejected": msgs("5")},  # conversational, implicit prompt
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},  # plain text
        {"chosen": "2+2? 4", "rejected": "2+2? 5"},  # plain text, implicit prompt
    ]
    res = convert_rows("trl", trl)
    assert [p["source_row"] for p in res.pairs] == [0, 1, 2]
    assert all(p["chosen"] == msgs("4") for p in res.pairs)
    assert reasons(res) == [(3, "missing_field", "prompt")]


def test_outputs_round_trip_through_trl_and_rlhflow():
    msgs = lambda a: [{"role": "user", "content": "q"}, {"role": "assistant", "content": a}]  # noqa: E731
    multi = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    res = convert_rows(
        "rlhflow",
        [
            {"chosen": msgs("x"), "rejected": msgs("y")},
            {"chosen": multi + msgs("x"), "rejected": multi + msgs("y")},
        ],
    )
    from rlhf.cli import pa_table

    prefs = pa_table(res.pairs, "preferences")
    trl, lost = to_output(prefs, "trl")
    assert lost == 0 and trl.to_pylist()[0] == {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "x"}],
        "rejected": [{"role": "assistant", "content": "y"}],
    }
    back = convert_rows("trl", trl.to_pylist())
    assert [p["chosen"] for p in back.pairs] == [p["chosen"] for p in res.pairs]
    text, lost = to_output(prefs, "trl-text")
    assert lost == 1 and text.to_pylist() == [{"prompt": "q", "chosen": "x", "rejected": "y"}]
    rl, _ = to_output(prefs, "rlhflow")
    assert convert_rows("rlhflow", rl.to_pylist()).pairs[1]["chosen"] == multi + msgs("x")


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json", ".parquet"])
def test_loaders_read_local_files(tmp_path, suffix):
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}]
    path = tmp_path / f"d{suffix}"
    if suffix == ".jsonl.gz":
        write_jsonl_gz(path, rows)
    elif suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    assert load_rows(path) == rows


def test_hub_ids_are_refused_without_opt_in(monkeypatch):
    monkeypatch.delenv("RLHF_ALLOW_HUB", raising=False)
    with pytest.raises(FileNotFoundError, match="RLHF_ALLOW_HUB=1"):
        load_rows("Anthropic/hh-rlhf")


def test_convert_command_counts_every_row(tmp_path, capsys):
    rows = [
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: hello",
            "rejected": "\n\nHuman: hi\n\nAssistant: bye",
        },
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: same",
            "rejected": "\n\nHuman: hi\n\nAssistant: same",
        },
        {"chosen": "Human: no separators", "rejected": "\n\nHuman: hi\n\nAssistant: x"},
        {
            "chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
            "rejected": "\n\nHuman: a\n\nAssistant: B\n\nHuman: c\n\nAssistant: e",
        },
    ]
    src = write_jsonl_gz(tmp_path / "train.jsonl.gz", rows)
    out = tmp_path / "hh.parquet"
    # Two of four rows are defective (malformed, prefix_mismatch): over the default share.
    assert main(["convert", "--from", "hh-rlhf", str(src), str(out)]) == 1
    capsys.readouterr()
    assert (
        main(["convert", "--from", "hh-rlhf", str(src), str(out), "--max-quarantine", "0.5"]) == 0
    )
    printed = capsys.readouterr().out
    kept = read_table("preferences", out)
    quarantine = read_table("quarantine", tmp_path / "hh.quarantine.parquet")
    assert kept.num_rows + quarantine.num_rows == len(rows)  # never drops a row uncounted
    assert "kept 1 pairs" in printed and "quarantined 3" in printed
    for reason in ("identical_pair: 1", "malformed: 1", "prefix_mismatch: 1"):
        assert reason in printed
    assert main(["convert", "--from", "hh-rlhf", str(tmp_path / "nope.jsonl"), str(out)]) == 3


def test_the_issue_formats_are_all_registered():
    names = {
        "hh-rlhf",
        "shp",
        "helpsteer",
        "pku-saferlhf",
        "ultrafeedback",
        "ultrainteract",
        "codeultrafeedback",
        "argilla-math",
        "orca-dpo",
        "capybara",
        "rlhflow",
        "trl",
    }
    assert names <= set(FORMATS)
    assert all("/" in f.mirrors for f in FORMATS.values())


def test_prompt_sources_in_their_published_schemas(tmp_path, capsys):
    from rlhf.core.config import PromptsConfig
    from rlhf.prompts.sources import convert_prompts
    from rlhf.prompts.splits import split_prompts

    pool, q, rep = convert_prompts(
        "openorca",
        [
            {
                "id": "cot.1",
                "system_prompt": "You are an AI assistant.",
                "question": "2+2?",
                "response": "4",
            },
            {"id": "cot.2", "system_prompt": "", "question": "3+3?", "response": "6"},
            {"id": "cot.3", "system_prompt": "", "question": "  ", "response": "6"},
        ],
    )
    msgs = pool.column("messages").to_pylist()
    assert msgs[0] == [
        {"role": "system", "content": "You are an AI assistant."},
        {"role": "user", "content": "2+2?"},
    ]
    assert msgs[1] == [{"role": "user", "content": "3+3?"}]
    assert [(r["source_row"], r["reason"], r["field"]) for r in q] == [
        (2, "empty_turn", "question")
    ]
    _, _, rep = convert_prompts(
        "capybara",
        [
            {"source": "GOAT", "conversation": [{"input": "hi", "output": "hello"}]},
            {"source": "GOAT", "conversation": []},
        ],
    )
    assert rep["prompts"] == 1 and rep["quarantined"] == {"missing_field": 1}
    dibt = [
        {
            "prompt": "write a poem",
            "quality": [],
            "avg_rating": 4.0,
            "num_responses": 2,
            "agreement_ratio": 1.0,
            "raw_responses": [4, 4],
            "kind": "human",
            "cluster_description": "c",
            "topic": "t",
        }
    ] * 3 + [{"prompt": "Write a  poem", "kind": "human"}]
    pool, _, rep = convert_prompts("dibt", dibt)
    assert rep == {"rows": 4, "prompts": 4, "unique_prompts": 2, "duplicates": 2, "quarantined": {}}
    for fmt, row in (
        ("ultrafeedback", {"source": "x", "instruction": "i", "models": [], "completions": []}),
        ("helpsteer", {"prompt": "p", "response": "r", "helpfulness": 3}),
        ("ultrainteract", {"id": "1", "instruction": "solve", "response": "x"}),
        ("plain", {"text": "hello"}),
    ):
        assert convert_prompts(fmt, [row])[2]["prompts"] == 1, fmt
    # The CLI writes a prompt-pool table that the prompts stage can split.
    src = write_jsonl_gz(
        tmp_path / "p.jsonl.gz", [{"prompt": f"prompt {i}"} for i in range(12)] + [{"prompt": ""}]
    )
    out = tmp_path / "pool.parquet"
    assert main(["prompts", "--from", "dibt", str(src), str(out)]) == 0
    assert "12 prompts (12 unique" in capsys.readouterr().out
    pool = read_table("prompt_pool", out)
    table, _ = split_prompts(PromptsConfig(eval_size=4, slice_size=4, n_slices=2), pool)
    assert sorted(set(table.column("split").to_pylist())) == ["eval", "train_1", "train_2"]
