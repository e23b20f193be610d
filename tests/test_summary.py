import json

import pytest
import yaml

from rlhf.summary import results_markdown, update_readme


def metrics(gold, wr, length):
    return {
        "gold_mean": gold,
        "win_rate_vs_sft": wr,
        "lc_win_rate_vs_sft": wr - 0.01,
        "mean_length_words": length,
        "correctness": {"chat": 0.1, "chat-hard": 0.2, "safety": 0.3, "reasoning": 0.4},
        "wall_s": 1.0,
    }


def test_results_table_comes_from_the_metrics_files(tmp_path):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"iterations": {"iter_1": {}, "iter_2": {}}})
    )
    (tmp_path / "reports/eval").mkdir(parents=True)
    for name, m in {"sft": metrics(0.4, 0.5, 12.0), "iter_1": metrics(0.61, 0.72, 10.5)}.items():
        (tmp_path / f"reports/eval/{name}.json").write_text(json.dumps(m))
    (tmp_path / "reports/timings").mkdir()
    (tmp_path / "reports/timings/sft.json").write_text(json.dumps({"wall_s": 12.5}))
    md = results_markdown(tmp_path)
    assert "`sft` 12.5" in md
    assert "| sft | 0.400 | 0.500 | 0.490 | 12.0 | 0.10 / 0.20 / 0.30 / 0.40 |" in md
    assert "| iter_1 | 0.610 | 0.720 | 0.710 | 10.5 |" in md
    assert "| offline_dpo | not run |" in md and "| iter_2 | not run |" in md

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold numbers\n<!-- results:end -->\noutro\n")
    update_readme(readme, tmp_path)
    text = readme.read_text()
    assert "old numbers" not in text and "| iter_1 | 0.610" in text and text.endswith("outro\n")
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="needs exactly one"):
        update_readme(readme, tmp_path)
