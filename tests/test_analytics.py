import pyarrow as pa
import pytest

from rlhf.analytics import connect, table1_markdown, table1_stats
from rlhf.schemas import write_table


def conv(*turns):
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)
    ]


def test_table1_stats_on_a_hand_built_mix(tmp_path):
    rows = [
        # source a: two pairs on one prompt (3 words), one 2-turn pair
        (
            "a",
            "p1",
            conv(
                "one two three",
                "c c",
            ),
            conv("one two three", "r r r r"),
        ),
        ("a", "p1", conv("one two three", "c c c c"), conv("one two three", "r r")),
        ("a", "p2", conv("x y", "ok", "z", "c c c c c c"), conv("x y", "ok", "z", "r")),
        ("b", "p3", conv("hello", "fine answer"), conv("hello", "bad")),
    ]
    table = pa.Table.from_pylist(
        [
            {
                "pair_id": f"{i}",
                "prompt_id": pid,
                "source": s,
                "chosen": c,
                "rejected": r,
                "chosen_score": None,
                "rejected_score": None,
                "margin": None,
                "annotator": "t",
                "source_row": i,
            }
            for i, (s, pid, c, r) in enumerate(rows)
        ]
    )
    path = write_table("preferences", table, tmp_path / "prefs.parquet")
    stats = {r["source"]: r for r in table1_stats(path)}
    a = stats["a"]
    assert (a["n_pairs"], a["n_prompts"]) == (3, 2)
    assert a["mean_prompt_turns"] == pytest.approx((1 + 1 + 3) / 3, abs=1e-3)
    # prompt words: 3, 3, and 2 + 1 + 1 = 4 over the three turns before the answer
    assert a["mean_prompt_length"] == pytest.approx(10 / 3, abs=1e-3)
    assert a["mean_chosen_length"] == pytest.approx((2 + 4 + 6) / 3, abs=1e-3)
    assert a["mean_rejected_length"] == pytest.approx((4 + 2 + 1) / 3, abs=1e-3)
    assert stats["b"]["mean_chosen_length"] == 2
    assert stats["total"]["n_pairs"] == 4 and stats["total"]["n_prompts"] == 3
    md = table1_markdown(list(stats.values()))
    assert "| a | 3 | 2 |" in md and "words" in md


def test_word_macro_counts_blank_as_zero():
    con = connect()
    assert con.sql("SELECT n_words(''), n_words('  a  b\tc '), n_words(' ')").fetchall() == [
        (0, 3, 0)
    ]
