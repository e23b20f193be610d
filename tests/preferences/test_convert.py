"""`rlhf convert` / `rlhf prompts` on real-shaped files and the usual mistakes: nothing is ever
destroyed, every error is one line naming file, line and field, exit codes mean something,
and the formats people have are read. Every row here is made up."""

import gzip
import json
import os
import shutil

import datasets
import pyarrow.parquet as pq
import pytest
from trl.data_utils import is_conversational

from rlhf.cli import main
from rlhf.core.datafiles import read_local
from rlhf.core.schemas import read_table
from rlhf.preferences.formats import convert_rows, sniff
from rlhf.prompts.sources import convert_prompts

HH = [
    {
        "chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}",
        "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad",
    }
    for i in range(4)
]


def jsonl(path, rows, raw_lines=()):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return path


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def msgs(*turns):
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


# --- never destroy ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "--from", "hh-rlhf"],
        ["convert", "--from", "hh-rlhf", "--to", "trl"],
        ["prompts", "--from", "plain"],
    ],
)
def test_a_directory_as_output_is_refused_and_left_alone(tmp_path, capsys, argv):
    src = jsonl(tmp_path / "in.jsonl", HH + [{"prompt": "p"}])
    out = tmp_path / "results"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    rc, stdout, err = run(capsys, *argv, src, out)
    assert rc == 2
    assert (out / "precious.txt").read_text() == "keep me"
    assert err.count("\n") == 1 and "is a directory" in err and "Traceback" not in err


def test_output_equal_to_input_is_refused_even_through_a_link(tmp_path, capsys):
    src = jsonl(tmp_path / "uf.jsonl", HH)
    before = src.read_bytes()
    rc, _, err = run(capsys, "convert", "--from", "hh-rlhf", src, src)
    assert rc == 2 and "is the input file" in err
    parquet = tmp_path / "uf.parquet"
    assert run(capsys, "convert", "--from", "hh-rlhf", src, parquet)[0] == 0
    link = tmp_path / "link.parquet"
    os.symlink(parquet, link)
    pq_before = parquet.read_bytes()
    rc, _, err = run(capsys, "convert", "--from", "rlhflow", link, parquet)
    assert rc == 2 and "is the input file" in err
    assert src.read_bytes() == before and parquet.read_bytes() == pq_before
    # The quarantine table may not land on the input either.
    rc, _, err = run(
        capsys, "convert", "--from", "hh-rlhf", src, tmp_path / "o.parquet", "--quarantine", src
    )
    assert rc == 2 and src.read_bytes() == before


def test_the_suffix_decides_the_bytes_and_other_suffixes_are_refused(tmp_path, capsys):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    rc, _, err = run(capsys, "convert", "--from", "hh-rlhf", src, tmp_path / "out.csv")
    assert rc == 2 and ".jsonl.gz" in err and not (tmp_path / "out.csv").exists()
    for name in ("out.jsonl", "out.jsonl.gz", "out.parquet"):
        assert (
            run(capsys, "convert", "--from", "hh-rlhf", src, tmp_path / name, "--to", "trl")[0] == 0
        )
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x)["chosen"] for x in lines] == [
        [{"role": "assistant", "content": f"good {i}"}] for i in range(4)
    ]
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()).decode().splitlines() == lines
    pq.read_metadata(tmp_path / "out.parquet")  # real Parquet bytes
    for builder, name in (
        ("json", "out.jsonl"),
        ("json", "out.jsonl.gz"),
        ("parquet", "out.parquet"),
    ):
        ds = datasets.load_dataset(
            builder, data_files=str(tmp_path / name), split="train", cache_dir=str(tmp_path / "c")
        )
        assert ds.num_rows == 4 and is_conversational(ds[0]), name
    # No temporary file is left next to the outputs.
    assert not list(tmp_path.glob("*.tmp-*"))


def test_a_file_edited_in_place_with_the_same_size_and_mtime_is_read_anew(tmp_path, capsys):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    out = tmp_path / "hh.parquet"
    assert run(capsys, "convert", "--from", "hh-rlhf", src, out)[0] == 0
    st = src.stat()
    src.write_text(src.read_text().replace("good 0", "GOOD 0"))  # same length
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert src.stat().st_size == st.st_size and src.stat().st_mtime_ns == st.st_mtime_ns
    assert run(capsys, "convert", "--from", "hh-rlhf", src, out)[0] == 0
    assert read_table("preferences", out).to_pylist()[0]["chosen"][-1]["content"] == "GOOD 0"


# --- one-line errors, quarantine, exit codes --------------------------------------------------


def test_unreadable_files_stop_with_one_line_and_exit_3(tmp_path, capsys):
    data = gzip.compress(json.dumps(HH[0]).encode() * 50)
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    for name, words in (
        ("t.jsonl.gz", "truncated or corrupt gzip"),
        ("empty.jsonl", "no rows"),
        ("bad.parquet", "not a readable Parquet"),
        ("missing.jsonl", "no such file"),
    ):
        rc, _, err = run(
            capsys, "convert", "--from", "hh-rlhf", tmp_path / name, tmp_path / "o.parquet"
        )
        assert rc == 3, name
        assert err.startswith(f"error: {tmp_path / name}") and words in err and err.count("\n") == 1
    assert not (tmp_path / "o.parquet").exists()
    with pytest.raises(Exception, match="gzip"):  # --debug: the real exception
        main(
            [
                "convert",
                "--from",
                "hh-rlhf",
                str(tmp_path / "t.jsonl.gz"),
                str(tmp_path / "o.parquet"),
                "--debug",
            ]
        )


def test_a_bad_line_or_value_quarantines_its_row_with_line_and_field(tmp_path, capsys):
    rows = HH + [{"chosen": 123, "rejected": "\n\nHuman: q\n\nAssistant: a"}]
    src = jsonl(tmp_path / "hh.jsonl", rows, raw_lines=['{"chosen": "unterminated'])
    out = tmp_path / "hh.parquet"
    rc, stdout, _ = run(capsys, "convert", "--from", "hh-rlhf", src, out, "--max-quarantine", "0.5")
    assert rc == 0
    assert read_table("preferences", out).num_rows == 4
    q = read_table("quarantine", tmp_path / "hh.quarantine.parquet").to_pylist()
    assert [(r["source_row"], r["reason"], r["field"]) for r in q] == [
        (5, "invalid_json", ""),
        (4, "wrong_type", "chosen"),
    ]
    assert f"{src} line 6: invalid JSON" in stdout  # 1-based line of the file
    assert f"{src} line 5: field 'chosen': chosen is a number, expected text" in stdout
    # Over the default share of defects (2 of 6): exit 1, the counts still printed.
    rc, stdout, err = run(capsys, "convert", "--from", "hh-rlhf", src, out)
    assert rc == 1 and "exceed --max-quarantine 0.1" in err and "wrong_type: 1" in stdout


def test_the_wrong_reader_exits_1_suggests_the_right_one_and_keeps_the_old_output(tmp_path, capsys):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    out = tmp_path / "pairs.parquet"
    assert run(capsys, "convert", "--from", "hh-rlhf", src, out)[0] == 0
    good = out.read_bytes()
    rc, stdout, err = run(capsys, "convert", "--from", "shp", src, out, "--to", "trl")
    assert rc == 1 and "did you mean --from hh-rlhf?" in err and "kept 0 pairs" in stdout
    assert out.read_bytes() == good  # an empty result never replaces a good file
    rc, stdout, _ = run(capsys, "convert", "--from", "auto", src, tmp_path / "auto.parquet")
    assert rc == 0 and "--from auto: hh-rlhf" in stdout


def test_messages_name_the_datasets_own_fields():
    res = convert_rows(
        "ultrafeedback",
        [
            {"completions": []},
            {"instruction": "x", "completions": [{"response": 5, "overall_score": 3}]},
        ],
    )
    assert [(q["reason"], q["field"]) for q in res.quarantine] == [
        ("missing_field", "instruction"),
        ("wrong_type", "completions[0].response"),
    ]


def test_rlhflow_output_has_typed_score_columns_even_without_scores(tmp_path, capsys):
    src = jsonl(tmp_path / "hh.jsonl", HH)
    out = tmp_path / "rl.parquet"
    assert run(capsys, "convert", "--from", "hh-rlhf", src, out, "--to", "rlhflow")[0] == 0
    schema = pq.read_schema(out)
    assert str(schema.field("chosen_score").type) == "double"
    assert str(schema.field("rejected_score").type) == "double"


# --- readers for the formats people have -----------------------------------------------------


def test_ultrafeedback_binarized_keeps_scores_and_checks_them():
    def row(c, r, sc, sr, prompt="what is 2+2?"):
        return {
            "prompt": prompt,
            "prompt_id": "x",
            "chosen": c,
            "rejected": r,
            "messages": c,
            "score_chosen": sc,
            "score_rejected": sr,
        }

    rows = [
        row(msgs("what is 2+2?", "4"), msgs("what is 2+2?", "5"), 9.0, 3.0),
        row([{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}], 8, 2),
        row(msgs("q", "a"), msgs("q", "b"), 5.0, 5.0, prompt="q"),
        row(msgs("q", "a"), msgs("q", "b"), 2.0, 7.0, prompt="q"),
    ]
    assert sniff(rows)[0] == "ultrafeedback-binarized"
    res = convert_rows("ultrafeedback-binarized", rows)
    assert [(p["chosen_score"], p["rejected_score"]) for p in res.pairs] == [(9.0, 3.0), (8.0, 2.0)]
    assert res.pairs[1]["chosen"] == msgs("what is 2+2?", "4")  # the prompt is prepended
    assert [(q["source_row"], q["reason"]) for q in res.quarantine] == [
        (2, "tied_rating"),
        (3, "label_contradicts_scores"),
    ]
    # The readers it used to be confused with reject every row.
    assert not convert_rows("trl", rows).pairs and not convert_rows("ultrafeedback", rows).pairs


def test_sharegpt_preference_keeps_system_and_every_turn():
    rows = [
        {
            "conversations": [
                {"from": "human", "value": "hi"},
                {"from": "gpt", "value": "hello"},
                {"from": "human", "value": "  indented code?"},
            ],
            "system": "be brief",
            "chosen": {"from": "gpt", "value": "yes"},
            "rejected": {"from": "gpt", "value": "no"},
        },
        {
            "conversations": [{"from": "observation", "value": "tool output"}],
            "chosen": {"from": "gpt", "value": "a"},
            "rejected": {"from": "gpt", "value": "b"},
        },
        {
            "conversations": [{"from": "human", "value": "q"}],
            "chosen": "plain",
            "rejected": {"from": "gpt", "value": "b"},
        },
    ]
    assert sniff(rows[:1])[0] == "sharegpt"
    res = convert_rows("sharegpt", rows)
    assert res.pairs[0]["chosen"] == [
        {"role": "system", "content": "be brief"},
        *msgs("hi", "hello", "  indented code?", "yes"),
    ]
    assert [(q["source_row"], q["reason"], q["field"]) for q in res.quarantine] == [
        (1, "bad_roles", "chosen"),
        (2, "wrong_type", "chosen"),
    ]


def test_content_part_lists_are_read_wherever_messages_are():
    parts = lambda t: [{"type": "text", "text": t}]  # noqa: E731
    rows = [
        {
            "chosen": [
                {"role": "user", "content": parts("q")},
                {"role": "assistant", "content": [{"type": "text", "value": "a"}]},
            ],
            "rejected": [
                {"role": "user", "content": parts("q")},
                {"role": "assistant", "content": parts("b")},
            ],
        },
        {
            "chosen": [
                {"role": "user", "content": [{"type": "image_url", "image_url": "x"}]},
                {"role": "assistant", "content": "a"},
            ],
            "rejected": msgs("q", "b"),
        },
    ]
    res = convert_rows("rlhflow", rows)
    assert res.pairs[0]["chosen"] == msgs("q", "a")
    assert [(q["reason"], q["field"]) for q in res.quarantine] == [("malformed", "chosen")]
    sg = convert_rows(
        "sharegpt",
        [
            {
                "messages": [{"role": "user", "content": parts("q")}],
                "chosen": {"role": "assistant", "content": parts("x")},
                "rejected": {"role": "assistant", "content": "y"},
            }
        ],
    )
    assert sg.pairs[0]["chosen"] == msgs("q", "x")


def test_pairwise_human_judged_rows_follow_the_majority():
    base = {"instruction": "Sum", "input": "2 and 2", "response1": "4", "response2": "5"}
    rows = [
        {**base, "annotator1": 1, "annotator2": 1, "annotator3": 2},
        {**base, "annotator1": 2, "annotator2": 0, "annotator3": 2},
        {**base, "annotator1": 1, "annotator2": 2, "annotator3": 0},
        {**base, "annotator1": 0, "annotator2": 0, "annotator3": 1},
        {**base, "annotator1": 7},
    ]
    res = convert_rows("pairwise-judged", rows)
    assert [
        (p["chosen"][-1]["content"], p["chosen_score"], p["rejected_score"]) for p in res.pairs
    ] == [
        ("4", 2.0, 1.0),
        ("5", 2.0, 0.0),
    ]
    assert res.pairs[0]["chosen"][0] == {"role": "user", "content": "Sum\n2 and 2"}
    assert [(q["source_row"], q["reason"]) for q in res.quarantine] == [
        (2, "no_majority"),
        (3, "no_majority"),
        (4, "invalid_label"),
    ]


def test_alpaca_prompts_join_instruction_and_input_byte_for_byte():
    rows = [
        {"instruction": "Translate to French:", "input": "  good morning", "output": "x"},
        {"instruction": "    def f():\n        pass\nExplain.", "input": ""},
        {"instruction": "Q2", "input": "", "system": "sys", "history": [["Q1", "A1"]]},
        {"instruction": "   ", "input": ""},
        {"instruction": "x", "history": [["only one"]]},
    ]
    pool, q, rep = convert_prompts("alpaca", rows)
    got = pool.column("messages").to_pylist()
    assert got[0] == [{"role": "user", "content": "Translate to French:\n  good morning"}]
    assert got[1] == [{"role": "user", "content": "    def f():\n        pass\nExplain."}]
    assert got[2] == [{"role": "system", "content": "sys"}, *msgs("Q1", "A1", "Q2")]
    assert [(r["source_row"], r["reason"], r["field"]) for r in q] == [
        (3, "empty_turn", "instruction"),
        (4, "malformed", "history[0]"),
    ]


def test_question_files_keep_every_turn_and_their_category(tmp_path, capsys):
    mt = [
        {
            "question_id": 81,
            "category": "writing",
            "turns": ["Write a blog post.", "Rewrite it in verse."],
        },
        {"question_id": 82, "category": "coding", "turns": ["  x = 1  # indented"]},
        {"question_id": 83, "category": "math", "turns": []},
    ]
    arena = [
        {
            "question_id": "a1",
            "category": "arena-hard-v0.1",
            "cluster": "c",
            "turns": [{"content": "Solve it."}],
        },
        {"uid": "b2", "category": "hard_prompt", "subcategory": "coding", "prompt": "Refactor."},
    ]
    pool, q, _ = convert_prompts("questions", mt + arena)
    rows = pool.to_pylist()
    assert rows[0]["messages"] == [{"role": "user", "content": "Write a blog post."}]
    assert rows[0]["follow_ups"] == ["Rewrite it in verse."] and rows[1]["follow_ups"] is None
    assert rows[1]["messages"][0]["content"] == "  x = 1  # indented"
    assert [r["category"] for r in rows] == [
        "writing",
        "coding",
        "arena-hard-v0.1",
        "hard_prompt/coding",
    ]
    assert [(r["source_row"], r["reason"]) for r in q] == [(2, "empty_turn")]
    # Through the CLI and the prompts stage's splitter, the follow-ups survive.
    src = jsonl(tmp_path / "question.jsonl", mt * 6)
    out = tmp_path / "pool.parquet"
    rc, stdout, err = run(
        capsys, "prompts", "--from", "questions", src, out, "--max-quarantine", "0.5"
    )
    assert rc == 0, err
    assert read_table("prompt_pool", out).to_pylist()[0]["follow_ups"] == ["Rewrite it in verse."]


def test_prompts_command_refuses_and_reports_like_convert(tmp_path, capsys):
    src = jsonl(tmp_path / "p.jsonl", [{"prompt": f"p{i}"} for i in range(9)], raw_lines=["{oops"])
    out = tmp_path / "pool.jsonl"
    rc, stdout, err = run(capsys, "prompts", "--from", "plain", src, out, "--max-quarantine", "0.2")
    assert rc == 0, err
    assert f"{src} line 10: invalid JSON" in stdout
    assert len(out.read_text().splitlines()) == 9
    rc, _, err = run(capsys, "prompts", "--from", "plain", src, src)
    assert rc == 2 and len(read_local(src)) == 10


def test_a_copy_of_a_good_file_is_read_like_the_original(tmp_path):
    src = jsonl(tmp_path / "a.jsonl", HH)
    shutil.copy2(src, tmp_path / "b.jsonl")
    assert read_local(tmp_path / "b.jsonl") == read_local(src)
    assert read_local(src).where(2) == f"{src} line 3"
