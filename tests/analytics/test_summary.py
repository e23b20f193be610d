"""The report's claims and tables on crafted metrics, and the README block generated from it."""

import json

import pytest
import yaml

from rlhf.analytics.report import build_report
from rlhf.analytics.summary import results_markdown, update_readme
from rlhf.core import paths
from rlhf.core.config import parse_params


def iv(mean, half):
    return {"mean": mean, "lo": mean - half, "hi": mean + half}


def metrics(gold, wr, length, half=0.02):
    return {
        "gold_mean": iv(gold, half),
        "gold_gain_vs_sft": iv(gold - 0.4, half),
        "win_rate_vs_sft": iv(wr, half) if wr != 0.5 else iv(0.5, 0.0),
        "lc_win_rate_vs_sft": iv(wr - 0.01, half),
        "mean_length_words": iv(length, 0.5),
        "correctness": {"chat": 0.1, "chat-hard": 0.2, "safety": 0.3, "reasoning": 0.4},
        "by_seed": {"0": {"gold_mean": gold, "win_rate_vs_sft": wr, "mean_length_words": length}},
    }


def project(tmp_path, offline_wr, iter_wr):
    raw = {"iterations": {"iter_1": {"policy_in": "models/sft", "prompt_split": "train_1"}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "reports/eval").mkdir(parents=True)
    for name, m in {
        "sft": metrics(0.4, 0.5, 12.0),
        "offline_dpo": metrics(0.45, offline_wr, 11.0),
        "iter_1": metrics(0.61, iter_wr, 10.5),
    }.items():
        (tmp_path / f"reports/eval/{name}.json").write_text(json.dumps(m))
    return parse_params(raw)


def write_collected(tmp_path, params, runs):
    """reports/ablations.json as `rlhf ablations collect` writes it for `params`."""
    from rlhf.analytics.ablations import save

    save(tmp_path / paths.ABLATIONS, params, runs, [])


def test_claims_hold_when_intervals_separate(tmp_path):
    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    data = build_report(params, tmp_path)
    verdicts = {c.text.split(" (")[0].split(",")[0]: c.holds for c in data.claims}
    assert verdicts["Iterative DPO"] is True
    assert verdicts["Offline DPO beats SFT"] is True
    md = (tmp_path / paths.REPORT_MD).read_text()
    assert "| iter_1 | 0.610 [0.590, 0.630] | 0.210 [0.190, 0.230] | 0.700 [0.680, 0.720] |" in md
    assert "**HOLDS** — Iterative DPO (iter_1) beats offline DPO" in md
    # No loop tables in this project: those sections are absent, not crashing.
    assert "On-policy pair statistics" not in md
    assert "**NOT MEASURED** — A length penalty" in md


def test_claims_fail_plainly_when_intervals_overlap(tmp_path):
    params = project(tmp_path, offline_wr=0.52, iter_wr=0.55)  # [0.50,0.54] vs [0.53,0.57]
    data = build_report(params, tmp_path)
    first = data.claims[0]
    assert first.text.startswith("Iterative DPO") and first.holds is False
    assert first.holds is False and data.claims[1].holds is False  # 0.50 is not above 0.5
    assert "**DOES NOT HOLD** — Iterative DPO" in (tmp_path / paths.REPORT_MD).read_text()


def test_readme_block_comes_from_the_report(tmp_path):
    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    build_report(params, tmp_path)
    (tmp_path / "reports/timings").mkdir()
    (tmp_path / "reports/timings/sft.json").write_text(json.dumps({"wall_s": 12.5}))
    (tmp_path / "reports/timings/base.json").write_text(
        json.dumps({"wall_s": 40.0, "startup_s": 6.25, "compute": {"reproducible": True}})
    )
    md = results_markdown(tmp_path)
    assert "| `sft` | — | 12.5 |" in md  # a timing from before start-ups were recorded
    assert "| `base` | 6.2 | 40.0 |" in md
    assert "| all 2 stages | 6.2 | 52.5 |" in md
    assert "| iter_1 | 0.610 [0.590, 0.630]" in md
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold numbers\n<!-- results:end -->\noutro\n")
    update_readme(readme, tmp_path)
    text = readme.read_text()
    assert "old numbers" not in text and "| iter_1 | 0.610" in text and text.endswith("outro\n")
    readme.write_text("no markers")
    with pytest.raises(SystemExit, match="needs exactly one"):
        update_readme(readme, tmp_path)


def test_failing_claims_say_why_from_the_runs_own_diagnostics(tmp_path):
    raw = {
        "iterations": {
            "iter_1": {"policy_in": "models/sft", "prompt_split": "train_1"},
            "iter_2": {"policy_in": "models/iter_1", "prompt_split": "train_2"},
        }
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "reports/eval").mkdir(parents=True)
    for name, gold, wr, kl in [
        ("sft", 0.40, 0.5, 0.0),
        ("offline_dpo", 0.40, 0.50, 0.01),  # did not move: does not beat SFT
        ("iter_1", 0.46, 0.60, 0.2),
        ("iter_2", 0.45, 0.62, 0.9),  # moved further, gained less: no growth
    ]:
        m = metrics(gold, wr, 11.0)
        m["kl_to_sft"] = iv(kl, 0.01)
        (tmp_path / f"reports/eval/{name}.json").write_text(json.dumps(m))
    data = build_report(parse_params(raw), tmp_path)
    claims = {c.text.split(" (")[0].split(":")[0]: c for c in data.claims}
    offline = claims["Offline DPO beats SFT"]
    assert offline.holds is False and "0.010 nats from SFT, iter_2 0.90" in offline.why
    growth = claims["The gold gain over SFT grows with iterations"]
    assert growth.holds is False
    assert "peaks at 0.20 nats (iter_1, +0.060)" in growth.why and "iter_2 0.90 nats" in growth.why
    md = (tmp_path / paths.REPORT_MD).read_text()
    assert f"*Why:* {growth.why}." in md
    assert "oracle control" not in growth.why  # none collected
    # With the oracle control collected: whether the loop grows the gain with a right labeller.
    oracle = {
        "ablation": "oracle_annotator",
        "change": "score.ranker=annotator",
        "seeds": 1,
        "final_iteration": "iter_2",
        "final": metrics(0.5, 0.7, 10.0),
        "policies": {
            "iter_1": {"gold_gain_vs_sft": iv(0.02, 0.01)},
            "iter_2": {"gold_gain_vs_sft": iv(0.09, 0.01)},
        },
    }
    write_collected(tmp_path, parse_params(raw), [oracle])
    why = next(
        c.why
        for c in build_report(parse_params(raw), tmp_path).claims
        if c.text.startswith("The gold gain over SFT grows")
    )
    assert "the oracle control" in why and "iter_1 +0.020 [+0.010, +0.030] -> iter_2 +0.090" in why
    assert "intervals apart" in why and "this run keeps 56% of the oracle loop" in why
    # A claim that holds carries no explanation in the report.
    held = next(line for line in md.splitlines() if line.startswith("- **HOLDS**"))
    assert "*Why:*" not in held


def test_the_report_takes_the_judge_from_the_evaluations_not_from_params(tmp_path):
    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)  # params say: gold judge
    for name in ("sft", "offline_dpo", "iter_1"):
        f = tmp_path / f"reports/eval/{name}.json"
        f.write_text(json.dumps({**json.loads(f.read_text()), "judge": "reward_model"}))
    data = build_report(params, tmp_path)
    assert data.judge == "reward_model"
    assert all(c.holds is None for c in data.claims)  # a proxy judge proves no gold claim
    f = tmp_path / "reports/eval/iter_1.json"
    f.write_text(json.dumps({**json.loads(f.read_text()), "judge": "gold"}))
    with pytest.raises(ValueError, match="different judges"):
        build_report(params, tmp_path)


def test_length_claims_cite_the_verbose_annotator_ablations(tmp_path):

    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    (tmp_path / paths.RM_EVAL).write_text(
        json.dumps({"length_reward_corr_rm": -0.12, "length_reward_corr_gold": -0.17})
    )

    def run(name, length, lc, rm_r=None):
        final = {**metrics(0.6, lc + 0.02, length), "lc_win_rate_vs_sft": iv(lc, 0.02)}
        rm = {"length_reward_corr_rm": rm_r, "length_reward_corr_gold": -0.16} if rm_r else {}
        return {"ablation": name, "change": "x", "seeds": 1, "final": final, "rm_eval": rm}

    runs = [
        run("baseline", 8.4, 0.527),  # with the default penalty: shorter, LC lower: fails
        run("no_length_penalty", 10.7, 0.545),
        run("verbose_annotators", 14.0, 0.50, rm_r=0.21),
        run("verbose_annotators_length_penalty", 11.0, 0.53),
    ]
    write_collected(tmp_path, params, runs)
    data = build_report(params, tmp_path)
    claims = {c.text.split(" (")[0].split(":")[0]: c for c in data.claims}
    penalty = claims[
        "A length penalty makes answers shorter and raises the length-controlled win-rate"
    ]
    # The default-world pair decides the claim; the verbose pair is not mistaken for it...
    assert penalty.holds is False and "length 8.4 vs 10.7 words" in penalty.evidence
    # ...but is cited in the explanation, measured.
    assert "verbose_annotators, 1 seed(s)) the penalty gives 11.0 against 14.0 words" in penalty.why
    assert "LC win-rate of 0.530 against 0.500" in penalty.why
    md = (tmp_path / paths.REPORT_MD).read_text()
    assert "| 0.210 (-0.160) |" in md  # the RM's length r beside gold's in the ablation table


def test_the_oracle_control_shows_the_share_of_its_gain_the_proxy_keeps(tmp_path):
    from rlhf.analytics.ablations import ORACLE

    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)  # iter_1's gain: 0.21
    report_md = tmp_path / paths.REPORT_MD
    build_report(params, tmp_path)
    assert "The oracle control" not in report_md.read_text()  # no oracle run collected
    oracle = {
        "ablation": ORACLE,
        "change": "x",
        "seeds": 3,
        "final": metrics(0.7, 0.75, 10.0),
        "policies": {"iter_1": {"gold_gain_vs_sft": iv(0.3, 0.02)}},
    }
    write_collected(tmp_path, params, [oracle])
    build_report(params, tmp_path)
    md = report_md.read_text()
    assert "## The oracle control" in md
    assert "| iter_1 | 0.210 [0.190, 0.230] | 0.300 [0.280, 0.320] | 0.70 |" in md


def test_the_kl_budget_table_shows_each_rounds_budget_against_what_it_reached(tmp_path):
    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    report_md = tmp_path / paths.REPORT_MD
    build_report(params, tmp_path)
    assert "KL budget per round" not in report_md.read_text()  # no budgeted round
    m = json.loads((tmp_path / "reports/eval/iter_1.json").read_text())
    m["by_seed"] = {"0": {**m["by_seed"]["0"], "kl_to_sft": 0.09}, "1": {"kl_to_sft": 0.13}}
    (tmp_path / "reports/eval/iter_1.json").write_text(json.dumps(m))
    rounds = {
        "0": {"kl_budget": 0.1, "kl_reached": 0.081, "steps": 12, "kl_stopped": True},
        "1": {"kl_budget": 0.1, "kl_reached": 0.064, "steps": 38, "kl_stopped": False},
    }
    d = tmp_path / paths.iteration_dir("iter_1")
    d.mkdir(parents=True)
    (d / "dpo.json").write_text(json.dumps({"by_seed": rounds}))
    build_report(params, tmp_path)
    md = report_md.read_text()
    assert "## KL budget per round: target against reached" in md
    assert "| iter_1 | 0 | 0.100 | 0.081 | 12 | budget | 0.090 | yes |" in md
    assert "| iter_1 | 1 | 0.100 | 0.064 | 38 | end of training | 0.130 | no |" in md


def test_claims_show_each_replicates_verdict_beside_this_runs(tmp_path):

    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    report_md = tmp_path / paths.REPORT_MD
    build_report(params, tmp_path)
    assert "whole-pipeline replicate" not in report_md.read_text()  # none collected

    def replicate(name, iter_wr, iter_gain):  # as `rlhf ablations collect` saves a run
        return {
            "ablation": name,
            "change": "x",
            "seeds": 3,
            "final_iteration": "iter_1",
            "final": metrics(0.5, iter_wr, 10.0),
            "policies": {
                "offline_dpo": {"win_rate_vs_sft": iv(0.52, 0.01)},
                "iter_1": {"win_rate_vs_sft": iv(iter_wr, 0.02), "gold_gain_vs_sft": iter_gain},
            },
        }

    runs = [
        replicate("replicate_sft_rm_seed_1", 0.60, iv(0.05, 0.01)),
        replicate("replicate_sft_rm_seed_2", 0.53, iv(-0.01, 0.02)),
    ]
    write_collected(tmp_path, params, runs)
    build_report(params, tmp_path)
    md = report_md.read_text()
    row = next(x for x in md.splitlines() if x.startswith("| last iteration beats offline"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "HOLDS: 0.700 [0.680, 0.720] vs 0.560 [0.540, 0.580]"
    assert cells[2] == "HOLDS: 0.600 [0.580, 0.620] vs 0.520 [0.510, 0.530]"
    assert cells[3] == "DOES NOT HOLD: 0.530 [0.510, 0.550] vs 0.520 [0.510, 0.530]"
    gain = next(x for x in md.splitlines() if x.startswith("| last iteration's gold gain"))
    assert [c.strip().split(":")[0] for c in gain.strip("|").split("|")][1:] == [
        "HOLDS",
        "HOLDS",
        "DOES NOT HOLD",
    ]
    grows = next(x for x in md.splitlines() if x.startswith("| gold gain grows"))
    assert "NOT MEASURED" in grows  # one iteration: nothing to grow from


def test_an_off_control_is_said_off_and_shown_from_its_collected_ablation(tmp_path):
    from rlhf.analytics.ablations import CONTROL

    params = project(tmp_path, offline_wr=0.56, iter_wr=0.70)
    # The evaluate stage's record for a control that did not run (stages/evaluate.py).
    (tmp_path / "reports/eval/onpolicy_dpo.json").write_text(json.dumps({"skipped": "off"}))
    report_md = tmp_path / paths.REPORT_MD
    build_report(params, tmp_path)
    md = report_md.read_text()
    assert "| onpolicy_dpo |" not in md  # the skipped record is no policy row
    assert "The on-policy control is off in this run" in md
    assert f"rlhf ablations run {CONTROL}" in md

    control = {
        "ablation": CONTROL,
        "change": "onpolicy_control.enabled=True",
        "seeds": 3,
        "final": metrics(0.61, 0.70, 10.5),
        "policies": {
            "offline_dpo": {"win_rate_vs_sft": iv(0.56, 0.02), "gold_gain_vs_sft": iv(0.05, 0.02)},
            "onpolicy_dpo": {"win_rate_vs_sft": iv(0.64, 0.02), "gold_gain_vs_sft": iv(0.1, 0.02)},
            "iter_1": {"win_rate_vs_sft": iv(0.70, 0.02), "gold_gain_vs_sft": iv(0.21, 0.02)},
        },
    }
    write_collected(tmp_path, params, [control])
    build_report(params, tmp_path)
    md = report_md.read_text()
    assert "the numbers are the `onpolicy_control` ablation's (3 seeds" in md
    row = next(line for line in md.splitlines() if line.startswith("| onpolicy_dpo | on-policy"))
    assert "0.640 [0.620, 0.660]" in row and "0.100 [0.080, 0.120]" in row
    assert "| iter_1 | online iterative DPO, 1 rounds" in md
