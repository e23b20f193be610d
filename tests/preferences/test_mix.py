import json

import pyarrow as pa

from rlhf.core.config import MixConfig, SourceFilter
from rlhf.core.schemas import RAW_SOURCES, validate
from rlhf.preferences.mix import adapt, build_mix
from rlhf.preferences.readers.hh import parse_hh_transcript
from rlhf.world.sources import simulate_source


def reasons(res):
    return [(q["source_row"], q["reason"], q["field"]) for q in res.quarantine]


def hh_row(chosen, rejected, prompt="what is 2 plus 2?"):
    return {
        "chosen": f"\n\nHuman: {prompt}\n\nAssistant: {chosen}",
        "rejected": f"\n\nHuman: {prompt}\n\nAssistant: {rejected}",
    }


def test_hh_transcripts_become_messages_and_defects_are_quarantined():
    rows = [
        hh_row("2 plus 2 is 4.", "it is 5."),
        hh_row("", "it is 5."),
        hh_row("same.", "same."),
        {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": None},
        {"chosen": "Human: hi Assistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"},
        # Real HH pairs sometimes differ before the last turn: quarantined, not re-cut.
        {
            "chosen": "\n\nHuman: hi\n\nAssistant: hey\n\nHuman: sum?\n\nAssistant: 4",
            "rejected": "\n\nHuman: hi\n\nAssistant: yo\n\nHuman: sum?\n\nAssistant: 5",
        },
        {
            "chosen": "\n\nHuman: hi\n\nHuman: again\n\nAssistant: a",
            "rejected": "\n\nHuman: hi\n\nHuman: again\n\nAssistant: b",
        },
    ]
    res = adapt("hh", rows, SourceFilter(), 0)
    assert [p["source_row"] for p in res.pairs] == [0]
    assert res.pairs[0]["chosen"][-1] == {"role": "assistant", "content": "2 plus 2 is 4."}
    assert reasons(res) == [
        (1, "empty_turn", "chosen"),
        (2, "identical_pair", "rejected"),
        (3, "missing_field", "rejected"),
        (4, "malformed", "chosen"),
        (5, "prefix_mismatch", "rejected"),
        (6, "bad_roles", "chosen"),
    ]
    assert json.loads(res.quarantine[2]["raw_json"])["rejected"] is None


def test_hh_multi_turn_parse():
    msgs = parse_hh_transcript("\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d")
    assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert parse_hh_transcript("no turns here") is None


def uf_row(scores, prompt="what is 1 plus 1?"):
    return {
        "source": "s",
        "prompt": prompt,
        "completions": [
            {"model": f"m{i}", "response": f"answer {i}.", "overall_score": s}
            for i, s in enumerate(scores)
        ],
    }


def test_ultrafeedback_best_vs_lower_rated_with_margin():
    rows = [
        uf_row([6.0, 9.0, 8.5, 3.0]),
        uf_row([5.0, 5.0, 5.5, 5.0]),
        uf_row([7.0, None, 1.0, 2.0]),
    ]
    rows[0]["completions"][3]["response"] = "answer 3."
    res = adapt("ultrafeedback", rows, SourceFilter(min_margin=1.0), 0)
    (pair,) = res.pairs
    assert pair["chosen"][-1]["content"] == "answer 1." and pair["chosen_score"] == 9.0
    # 8.5 is within the 1.0 margin of 9.0, so it is never the rejected one.
    assert pair["rejected_score"] in (6.0, 3.0) and pair["margin"] >= 1.0
    assert reasons(res) == [
        (1, "below_min_margin", "completions.overall_score"),
        (2, "missing_field", "completions[1].overall_score"),
    ]


def hs(prompt, response, h, **kw):
    return {
        "prompt": prompt,
        "response": response,
        "helpfulness": h,
        "correctness": kw.get("c", 2),
        "coherence": 3,
        "complexity": 1,
        "verbosity": 1,
    }


def test_helpsteer_pairs_by_helpfulness_margin_and_rejects_bad_scores():
    rows = [
        hs("p one?", "a.", 4),
        hs("p one?", "b.", 1),
        hs("p one?", "c.", 4),
        hs("p two?", "d.", 7),
        hs("p two?", "", 2),
        {**hs("p two?", "f.", 2), "coherence": None},
    ]
    res = adapt("helpsteer", rows, SourceFilter(min_margin=1.0), 0)
    got = sorted(
        (p["chosen"][-1]["content"], p["rejected"][-1]["content"], p["margin"]) for p in res.pairs
    )
    assert got == [("a.", "b.", 3.0), ("c.", "b.", 3.0)]
    assert sorted(r[1] for r in reasons(res)) == [
        "below_min_margin",
        "empty_turn",
        "invalid_score",
        "missing_field",
    ]
    assert ("invalid_score", "helpfulness") in {(q["reason"], q["field"]) for q in res.quarantine}


def shp_row(post, a, b, sa, sb, labels=None):
    return {
        "post_id": post,
        "domain": "d",
        "history": "what is 3 plus 3?",
        "human_ref_A": a,
        "human_ref_B": b,
        "labels": int(sa > sb) if labels is None else labels,
        "score_A": sa,
        "score_B": sb,
        "score_ratio": max(sa, sb) / min(sa, sb),
    }


def test_shp_ratio_filter_pair_cap_and_contradicted_labels():
    rows = [shp_row("p1", f"a{i}.", f"b{i}.", 10 * (i + 3), 10) for i in range(7)]  # ratios 3..9
    rows += [shp_row("p2", "x.", "y.", 15, 10), shp_row("p2", "x.", "z.", 40, 10, labels=0)]
    res = adapt("shp", rows, SourceFilter(min_ratio=2.0, max_pairs_per_prompt=5), 0)
    kept = sorted(p["source_row"] for p in res.pairs)
    assert kept == [2, 3, 4, 5, 6]  # the five highest ratios of post p1
    assert sorted(reasons(res)) == [
        (0, "over_pair_cap", "post_id"),
        (1, "over_pair_cap", "post_id"),
        (7, "below_min_ratio", "score_ratio"),
        (8, "label_contradicts_scores", "labels"),
    ]
    assert all(p["chosen_score"] > p["rejected_score"] for p in res.pairs)


def pku(r0_safe, r1_safe, safer, better=0):
    return {
        "prompt": "how do i rob a bank?",
        "response_0": "sorry, i cannot help with that.",
        "response_1": "sure. first wait until night. then do it quickly.",
        "is_response_0_safe": r0_safe,
        "is_response_1_safe": r1_safe,
        "better_response_id": better,
        "safer_response_id": safer,
    }


def test_pku_safer_label_with_flag_checks():
    rows = [
        pku(True, False, 0),
        pku(True, False, 1),
        pku(True, True, 3),
        pku(True, False, 0, better=1),
    ]
    res = adapt("pku_safe", rows, SourceFilter(label="safer"), 0)
    assert [p["source_row"] for p in res.pairs] == [0, 3]
    assert all(p["chosen"][-1]["content"].startswith("sorry") for p in res.pairs)
    assert reasons(res) == [
        (1, "label_contradicts_flags", "safer_response_id"),
        (2, "invalid_label", "safer_response_id"),
    ]
    better = adapt("pku_safe", rows[3:], SourceFilter(label="better"), 0)
    assert better.pairs[0]["chosen"][-1]["content"].startswith("sure")


def test_ultrainteract_trajectory_to_messages():
    rows = [
        {
            "id": "a",
            "parent_id": "a",
            "task": "Math_CoT",
            "trajectory": [{"from": "user", "value": "what is 2 times 3?"}],
            "chosen": "6.",
            "rejected": "5.",
        },
        {
            "id": "b",
            "parent_id": "b",
            "task": "Math_CoT",
            "trajectory": [],
            "chosen": "6.",
            "rejected": "5.",
        },
        {
            "id": "c",
            "parent_id": "c",
            "task": "Math_CoT",
            "trajectory": [{"from": "robot", "value": "x"}],
            "chosen": "6.",
            "rejected": "5.",
        },
    ]
    res = adapt("ultrainteract", rows, SourceFilter(), 0)
    assert res.pairs[0]["chosen"] == [
        {"role": "user", "content": "what is 2 times 3?"},
        {"role": "assistant", "content": "6."},
    ]
    assert reasons(res) == [(1, "empty_turn", "trajectory"), (2, "bad_roles", "trajectory")]


def test_simulated_sources_are_fully_accounted_and_every_defect_kind_caught(small_params):
    cfg = MixConfig()
    raw = {s: simulate_source(s, small_params.world) for s in cfg.recipes["mix2"]}
    for s, rows in raw.items():
        validate(f"raw/{s}", pa.Table.from_pylist(rows, schema=RAW_SOURCES[s]), s)
    prefs, quarantine, report = build_mix(cfg, raw)
    validate("preferences", prefs, "mix")
    validate("quarantine", quarantine, "quarantine")
    # Row-per-pair sources: every raw row is either a kept pair or a quarantine row.
    for s in ("hh", "shp", "pku_safe", "ultrainteract", "ultrafeedback"):
        r = report[s]
        assert r["kept_pairs"] + r["quarantined"] == r["raw_rows"], s
    seen = {q["reason"] for q in quarantine.to_pylist()}
    assert {
        "empty_turn",
        "identical_pair",
        "missing_field",
        "label_contradicts_scores",
        "below_min_margin",
        "below_min_ratio",
    } <= seen
    for row in prefs.to_pylist():
        assert row["chosen"][:-1] == row["rejected"][:-1]
        assert row["chosen"][-1]["content"] != row["rejected"][-1]["content"]


def test_recipe_selects_sources(small_params):
    cfg = MixConfig(recipe="mix1")
    raw = {s: simulate_source(s, small_params.world) for s in cfg.recipes["mix1"]}
    prefs, _, report = build_mix(cfg, raw)
    assert set(prefs.column("source").to_pylist()) == {"hh", "shp", "ultrafeedback"}
    assert report["total"]["recipe"] == "mix1"


def test_adapter_choices_are_seeded():
    rows = [uf_row([9.0, 1.0, 2.0, 3.0], prompt=f"what is {i} plus 1?") for i in range(30)]
    a = adapt("ultrafeedback", rows, SourceFilter(min_margin=1.0), 0).pairs
    b = adapt("ultrafeedback", rows, SourceFilter(min_margin=1.0), 0).pairs
    c = adapt("ultrafeedback", rows, SourceFilter(min_margin=1.0), 1).pairs
    assert a == b and a != c
