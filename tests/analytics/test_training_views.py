"""The report's training curves (read from DVCLive's files) and sampled completions."""

import polars as pl
from dvclive import Live

from rlhf.analytics.figures import fig_curves
from rlhf.analytics.render import curves_markdown, samples_markdown
from rlhf.analytics.report_data import ReportData, load_curves


def _log(folder, series: dict[str, list[float]]):
    live = Live(str(folder), save_dvc_exp=False, dvcyaml=None)
    for step in range(len(next(iter(series.values())))):
        live.step = step + 1
        for name, values in series.items():
            live.log_metric(name, values[step])
    live.end()


def test_curves_are_read_per_run_and_metric_and_drawn(tmp_path):
    root = tmp_path / "curves"
    _log(root / "sft", {"loss": [2.0, 1.0, 0.5]})
    _log(root / "reward_model", {"loss": [0.7, 0.5], "accuracy": [0.5, 0.8]})
    for it in ("iter_1", "iter_2"):
        for s in (0, 1):
            _log(
                root / it / f"seed_{s}",
                {"loss": [0.69, 0.6], "rewards/margins": [0.0, 0.3], "kl_to_sft": [0.01, 0.05]},
            )
    curves = load_curves(root)
    assert sorted(curves) == [
        "iter_1/seed_0", "iter_1/seed_1", "iter_2/seed_0", "iter_2/seed_1", "reward_model", "sft",
    ]  # fmt: skip
    assert curves["sft"]["loss"] == [(1, 2.0), (2, 1.0), (3, 0.5)]
    assert curves["iter_2/seed_1"]["rewards/margins"][-1] == (2, 0.3)
    table = curves_markdown(curves)
    assert "| reward_model | 2 | 0.500 | 0.800 |" in table
    data = ReportData(*[None] * 11)
    data.curves = curves
    png = fig_curves(data, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sampled_completions_are_one_cell_each_and_cut():
    df = pl.DataFrame(
        {
            "category": ["chat", "chat"],
            "prompt_id": ["p1", "p1"],
            "prompt": ["what | is\nthis?"] * 2,
            "policy": ["sft", "iter_1"],
            "response": ["a | b\n\nc", "x" * 500],
            "gold": [0.1, 0.4],
        }
    )
    md = samples_markdown(df, limit=50)
    assert "what \\| is this?" in md
    assert "| sft | 0.100 | a \\| b c |" in md
    assert "| iter_1 | 0.400 | " + "x" * 49 + "… |" in md


def test_a_run_that_logged_nothing_still_has_its_declared_curves_folder(tmp_path):
    from rlhf.models.curves import ensure

    ensure(tmp_path / "sft")  # e.g. an imported SFT checkpoint: no step trained
    assert load_curves(tmp_path) == {"sft": {"loss": []}}
    _log(tmp_path / "iter_1" / "seed_0", {"loss": [0.7]})
    before = sorted(p.name for p in (tmp_path / "iter_1").rglob("*"))
    ensure(tmp_path / "iter_1")  # a logged run is left as it is
    assert sorted(p.name for p in (tmp_path / "iter_1").rglob("*")) == before
    data = ReportData(*[None] * 11)
    data.curves = load_curves(tmp_path)
    assert fig_curves(data, tmp_path).is_file()


def test_the_sample_shown_per_category_is_where_the_policies_differ_most():
    import duckdb

    from rlhf.analytics.report_data import sample_completions

    rows = [
        # category, prompt, policy -> gold: p2 separates the policies, p1 (sorts first) not
        ("chat", "p1", "sft", 0.5), ("chat", "p1", "iter_1", 0.5),
        ("chat", "p2", "sft", 0.1), ("chat", "p2", "iter_1", 0.9),
        ("safety", "p3", "sft", 0.2), ("safety", "p3", "iter_1", 0.3),
    ]  # fmt: skip
    evals = pl.DataFrame(
        [
            {
                "category": c,
                "prompt_id": p,
                "prompt": f"q {p}",
                "policy": pol,
                "gold": g,
                "response": f"{pol} on {p}",
                "seed": s,
                "sample_idx": i,
            }  # fmt: skip
            for c, p, pol, g in rows
            for s in (1, 2)
            for i in (0, 1)
        ]
    )
    con = duckdb.connect()
    con.register("evaluations", evals)
    df = sample_completions(con, ["sft", "iter_1"])
    assert df.select("category", "prompt_id", "policy").rows() == [
        ("chat", "p2", "sft"), ("chat", "p2", "iter_1"),
        ("safety", "p3", "sft"), ("safety", "p3", "iter_1"),
    ]  # fmt: skip
