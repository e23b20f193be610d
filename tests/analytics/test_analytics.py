from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from rlhf.core.duck import connect
from rlhf.core.schemas import write_table
from rlhf.preferences.table1 import table1_markdown, table1_stats


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


# ---------------------------------------------------------------------------------------
# Views, pair statistics and the length-bias analysis on hand-built iteration tables
# ---------------------------------------------------------------------------------------

from rlhf.analytics.views import (  # noqa: E402
    length_reward_correlations,
    onpolicy_diagnostics,
    pair_stats,
    register_views,
)
from rlhf.core import paths  # noqa: E402
from rlhf.core.schemas import PAIRS, SCORED, SCORED_GOLD  # noqa: E402

from ..conftest import scored_rows  # noqa: E402

PROMPT = [{"role": "user", "content": "what color is the fox?"}]


def _scored_rows(iteration, groups, seed=0):
    return scored_rows(iteration, groups, PROMPT, seed)


def _pair(iteration, pid, chosen, rejected, cr, rr, seed=0):
    return {
        "iteration": iteration,
        "seed": seed,
        "prompt_id": pid,
        "prompt": PROMPT,
        "chosen": chosen,
        "rejected": rejected,
        "chosen_reward": cr,
        "rejected_reward": rr,
        "chosen_length": len(chosen),
        "rejected_length": len(rejected),
        "selection": "best_worst",
    }


@pytest.fixture
def loop_project(tmp_path):
    it1 = _scored_rows(
        "iter_1",
        {
            "a": [("aaaa", 2.0), ("bb", 1.0), ("c", 0.0)],
            "b": [("xx", 0.5), ("yy", 0.5), ("zz", 0.5)],  # all tied: dropped
        },
    )
    it2 = _scored_rows(
        "iter_2", {"a": [("aaaaaa", 3.0), ("b", 1.0)], "b": [("x", 1.0), ("yyy", 0.0)]}
    )
    for it, rows in (("iter_1", it1), ("iter_2", it2)):
        write_table(
            "scored",
            pa.Table.from_pylist(rows, schema=SCORED),
            tmp_path / paths.iteration_dir(it) / "scored.parquet",
        )
    pairs1 = [_pair("iter_1", "a", "aaaa", "c", 2.0, 0.0)]
    pairs2 = [
        _pair("iter_2", "a", "aaaaaa", "b", 3.0, 1.0),
        _pair("iter_2", "b", "x", "yyy", 1.0, 0.0),
    ]
    for it, rows in (("iter_1", pairs1), ("iter_2", pairs2)):
        write_table(
            "pairs",
            pa.Table.from_pylist(rows, schema=PAIRS),
            tmp_path / paths.iteration_dir(it) / "pairs.parquet",
        )
    # Gold that falls with length where the RM rises with it (iter_1, prompt a).
    gold = [
        {
            "iteration": r["iteration"],
            "seed": 0,
            "prompt_id": r["prompt_id"],
            "sample_idx": r["sample_idx"],
            "n_words": len(r["response"]),
            "gold": 1.0 - 0.1 * len(r["response"]),
            "correctness": 1.0,
        }
        for r in it1 + it2
    ]
    write_table(
        "scored_gold", pa.Table.from_pylist(gold, schema=SCORED_GOLD), tmp_path / paths.SCORED_GOLD
    )
    return tmp_path


def test_views_union_iterations_and_skip_missing_tables(loop_project):
    con = connect()
    views = register_views(con, loop_project)
    assert {"scored", "pairs", "gold"} <= set(views)
    assert "preferences" not in views  # no such file: no view, no error
    n = con.sql("SELECT iteration, count(*) FROM scored GROUP BY 1 ORDER BY 1").fetchall()
    assert n == [("iter_1", 6), ("iter_2", 4)]


def test_views_leave_out_iterations_that_params_no_longer_names(loop_project, capsys):
    # A profile with one iteration, run where a two-iteration run left iter_2 on disk.
    (loop_project / "reports/eval").mkdir(parents=True)
    for p in ("sft", "iter_1", "iter_2"):
        (loop_project / f"reports/eval/{p}.json").write_text('{"judge": "gold"}')
    con = connect()
    register_views(con, loop_project, ["iter_1"])
    assert con.sql("SELECT DISTINCT iteration FROM scored").fetchall() == [("iter_1",)]
    assert con.sql("SELECT DISTINCT iteration FROM pairs").fetchall() == [("iter_1",)]
    assert con.sql("SELECT DISTINCT iteration FROM gold").fetchall() == [("iter_1",)]
    got = sorted(r[0] for r in con.sql("SELECT policy FROM metrics").fetchall())
    assert got == ["iter_1", "sft"]
    # `rlhf sql` follows the project's params.yaml unless asked for everything on disk.
    from rlhf.cli import main

    params = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    params["iterations"] = {"iter_1": params["iterations"]["iter_1"]}
    (loop_project / "params.yaml").write_text(yaml.safe_dump(params))
    q = "SELECT DISTINCT iteration FROM pairs ORDER BY 1"
    args = ["sql", q, "--root", str(loop_project), "--format", "csv"]
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.split() == ["iteration", "iter_1"]
    assert main([*args, "--all-iterations"]) == 0
    assert capsys.readouterr().out.split() == ["iteration", "iter_1", "iter_2"]


def test_pair_stats_of_a_hand_built_table(loop_project):
    con = connect()
    register_views(con, loop_project)
    s = {r["iteration"]: r for r in pair_stats(con)}
    assert s["iter_1"]["prompt_groups"] == 2 and s["iter_1"]["n_pairs"] == 1
    assert s["iter_1"]["drop_rate"] == pytest.approx(0.5)
    assert s["iter_1"]["tie_rate"] == pytest.approx(0.5)
    assert s["iter_1"]["mean_margin"] == pytest.approx(2.0)
    assert s["iter_2"]["mean_margin"] == pytest.approx(1.5)
    assert s["iter_2"]["mean_chosen_length"] == pytest.approx(3.5)  # (6 + 1) / 2
    assert s["iter_2"]["mean_rejected_length"] == pytest.approx(2.0)  # (1 + 3) / 2
    assert s["iter_2"]["chosen_longer_rate"] == pytest.approx(0.5)
    assert s["iter_2"]["drop_rate"] == 0.0


def test_length_reward_correlation_is_known_per_prompt(loop_project):
    con = connect()
    register_views(con, loop_project)
    c = length_reward_correlations(con).sort("iteration", "prompt_id").to_dicts()
    a1 = next(r for r in c if r["iteration"] == "iter_1" and r["prompt_id"] == "a")
    # RM reward rises exactly linearly? lengths 4,2,1 vs rewards 2,1,0: r = 0.9820
    assert a1["r_rm"] == pytest.approx(np.corrcoef([4, 2, 1], [2, 1, 0])[0, 1])
    assert a1["r_gold"] == pytest.approx(-1.0)  # gold = 1 - 0.1 * length
    b1 = next(r for r in c if r["iteration"] == "iter_1" and r["prompt_id"] == "b")
    assert b1["r_rm"] is None  # constant reward: no correlation, not a fake 0


def test_rlhf_sql_answers_the_readme_query(loop_project, capsys):
    from rlhf.cli import main

    q = "SELECT iteration, avg(chosen_length - rejected_length) AS d FROM pairs GROUP BY 1 ORDER BY 1"
    assert main(["sql", q, "--root", str(loop_project), "--format", "csv"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["iteration,d", "iter_1,3.0", "iter_2,1.5"]


def test_rlhf_sql_reports_a_bad_query_and_an_empty_project(loop_project, tmp_path, capsys):
    from rlhf.cli import main

    assert main(["sql", "SELECT nope FROM pairs", "--root", str(loop_project)]) == 1
    assert "nope" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["sql", "SELECT 1", "--root", str(empty)]) == 1
    assert "dvc repro" in capsys.readouterr().err


def test_rlhf_sql_interactive_session_runs_multiline_statements(loop_project, capsys, monkeypatch):
    from rlhf.cli import main

    lines = iter([".tables", "SELECT count(*) AS n", "FROM pairs;", ".quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["sql", "--root", str(loop_project), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "pairs\n" in out and "scored\n" in out  # .tables
    assert "n\n3\n" in out  # the statement spanning two lines ran once


def test_onpolicy_diagnostics_of_a_hand_built_run(loop_project):
    # gold = 1 - 0.1 * length. iter_1: prompt a's RM order (by length) is exactly gold's reverse;
    # prompt b's samples tie on gold (no pair to judge) and on the RM (no training pair).
    con = connect()
    register_views(con, loop_project)
    d = {r["iteration"]: r for r in onpolicy_diagnostics(con)}
    it1, it2 = d["iter_1"], d["iter_2"]
    assert it1["rm_accuracy"] == 0.0 and it1["gold_pairs"] == 3
    assert it1["gold_mean"] == pytest.approx((0.6 + 0.8 + 0.9 + 3 * 0.8) / 6)
    assert (it1["gold_chosen"], it1["gold_rejected"]) == pytest.approx((0.6, 0.9))
    assert it1["gold_best_of_n"] == pytest.approx(0.9)
    assert (it1["proxy_chosen"], it1["proxy_rejected"]) == pytest.approx((2.0, 0.0))
    # iter_2: the RM is wrong on a (long "aaaaaa" first) and right on b.
    assert it2["rm_accuracy"] == 0.5 and it2["gold_pairs"] == 2
    assert (it2["gold_chosen"], it2["gold_rejected"]) == pytest.approx((0.65, 0.8))
    assert it2["gold_best_of_n"] == pytest.approx(0.9)


def test_members_accuracy_in_rm_eval_agrees_with_the_reports_sql(loop_project):
    """The on-policy accuracy is computed twice: in SQL for the report (views.ONPOLICY_SQL) and
    with numpy for an ensemble's members (rlhf.evaluation.rm_eval.group_accuracy), which cannot
    import analytics. On the same samples both give the same accuracy and pair count."""
    import polars as pl

    from rlhf.evaluation.rm_eval import group_accuracy

    con = connect()
    register_views(con, loop_project)
    sql = {r["iteration"]: r for r in onpolicy_diagnostics(con)}
    rows = con.sql(
        "SELECT s.iteration, s.seed, s.prompt_id, s.penalized_reward AS proxy, g.gold "
        "FROM scored s JOIN gold g USING (iteration, seed, prompt_id, sample_idx) ORDER BY ALL"
    ).pl()
    assert set(sql) == {"iter_1", "iter_2"}
    for it, r in sql.items():
        part = rows.filter(pl.col("iteration") == it)
        groups = list(zip(part["seed"], part["prompt_id"], strict=True))
        (acc,), n = group_accuracy(part["proxy"].to_numpy()[None], part["gold"].to_numpy(), groups)
        assert n == r["gold_pairs"] and acc == pytest.approx(r["rm_accuracy"])


def _signal(acc: float, counts: dict[str, int] | None) -> dict:
    iv = {"mean": acc, "lo": acc - 0.01, "hi": acc + 0.01}
    out = {
        "accuracy": iv,
        "accuracy_by_section": {"chat": iv},
        "accuracy_one_order": iv,
        "first_position_rate": 0.5,
        "length_corr": None,
        "length_corr_gold": -0.1,
        "length_prompts": 5,
    }
    return out | ({"counts": counts} if counts is not None else {})


def test_table2_says_a_judge_that_read_no_verdict_was_not_measured():
    from rlhf.analytics.render import NO_VERDICT, table2_markdown

    rm = {
        "heldout_pairs": 10,
        "signals": {
            "reward_model": _signal(0.791, None),
            "preference_model": _signal(0.612, {"verdicts": 20, "malformed": 3}),
            "llm": _signal(0.5, {"verdicts": 20, "error:too_long": 18, "malformed": 2}),
        },
    }
    text = table2_markdown(rm)
    lines = {ln.split(" | ")[0]: ln for ln in text.splitlines() if ln.startswith("| ")}
    # Every verdict unread: in both tables the ties-by-rule 0.500 is not shown as an accuracy,
    # and why is said.
    llm_rows = [ln for ln in text.splitlines() if ln.startswith("| LLM-as-judge")]
    assert len(llm_rows) == 2
    assert all(NO_VERDICT in ln and "0.500" not in ln for ln in llm_rows)
    assert "LLM-as-judge read none of its 20 verdicts (`error:too_long` 18, `malformed` 2)" in text
    # Some verdicts read: the measured accuracy stays, with its unread count.
    assert "0.612 [0.602, 0.622]" in lines["| pairwise preference model"]
    assert "0.791 [0.781, 0.801]" in lines["| Bradley-Terry reward model"]
