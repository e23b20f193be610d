"""The report's tables and documents: markdown sections, reports/report.md, reports/summary.md
(the README's results block), the self-contained HTML page, and CSV series for `dvc plots`."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import polars as pl

from rlhf.analytics.ablations import CONTROL, ORACLE
from rlhf.analytics.claims import loop_verdicts, nested, replicate_runs
from rlhf.analytics.report_data import DISTANCE, METRICS, SECTIONS, ReportData, fmt, fmt_iv
from rlhf.core import paths
from rlhf.core.io import atomic_path

# ---------------------------------------------------------------------------------------
# Tables and documents
# ---------------------------------------------------------------------------------------


def _md_table(rows: list[dict[str, Any]], cols: list[tuple[str, str]], digits: int = 3) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.{digits}f}"
        return str(v)

    head = "| " + " | ".join(label for _, label in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(cell(r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def policies_markdown(df: pl.DataFrame) -> str:
    rows = []
    for r in df.to_dicts():
        row = {"policy": r["policy"]}
        for key, _ in METRICS:
            d = 1 if key == "mean_length_words" else 3
            row[key] = fmt(r, key, d)
        row["correctness"] = " / ".join(f"{r.get(f'correctness_{c}') or 0:.2f}" for c in SECTIONS)
        rows.append(row)
    cols = [("policy", "policy"), *[(k, f"{label} [95% CI]") for k, label in METRICS]]
    cols.append(("correctness", "correctness: " + " / ".join(SECTIONS)))
    return _md_table(rows, cols)


SIGNAL_NAMES = {
    "reward_model": "Bradley-Terry reward model",
    "preference_model": "pairwise preference model",
    "llm": "LLM-as-judge",
}


def _iv(d: dict[str, float] | None) -> str:
    return "" if not d else f"{d['mean']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def _unread_by_reason(counts: dict[str, int]) -> dict[str, int]:
    """The unread verdicts of a signal's counts, by reason: malformed replies and `error:*`."""
    return {k: v for k, v in counts.items() if k == "malformed" or k.startswith("error:")}


def _unread(counts: dict[str, int]) -> int:
    return sum(_unread_by_reason(counts).values())


NO_VERDICT = "not measured: no verdict read"
"""Table 2's cell for a signal that read none of its verdicts: every one a tie by rule, its
0.500 would read as a chance-level judge, which nobody measured."""


def _read_none(counts: dict[str, int]) -> bool:
    """Whether a signal's every verdict went unread (counts from reports/rm_eval.json)."""
    return counts.get("verdicts", 0) > 0 and _unread(counts) >= counts["verdicts"]


def _unread_reasons(counts: dict[str, int]) -> str:
    reasons = sorted(_unread_by_reason(counts).items(), key=lambda kv: -kv[1])
    return ", ".join(f"`{k}` {v}" for k, v in reasons)


def table2_markdown(rm: dict[str, Any]) -> str:
    """The paper's Table 2 from reports/rm_eval.json: each signal's accuracy against gold per
    section, with its position and length bias; then a user's benchmark file, per subset."""
    sig = rm["signals"]
    sections = sorted({k for v in sig.values() for k in v["accuracy_by_section"]})
    rows, bias, unmeasured = [], [], []
    for name, v in sorted(sig.items(), key=lambda kv: list(SIGNAL_NAMES).index(kv[0])):
        counts = v.get("counts") or {}
        label = SIGNAL_NAMES.get(name, name)
        blind = _read_none(counts)
        if blind:
            unmeasured.append(
                f"{label} read none of its {counts['verdicts']} verdicts ({_unread_reasons(counts)})"
            )
        row = {"signal": label, "all": NO_VERDICT if blind else _iv(v["accuracy"])}
        row.update(
            {sec: "" if blind else _iv(v["accuracy_by_section"].get(sec)) for sec in sections}
        )
        rows.append(row)
        bias.append(
            {
                "signal": label,
                "one": NO_VERDICT if blind else _iv(v["accuracy_one_order"]),
                "first": "" if blind else v["first_position_rate"],
                "len": v["length_corr"],
                "gold": v["length_corr_gold"],
                "unread": f"{_unread(counts)} of {counts.get('verdicts', '?')}" if counts else "",
            }
        )
    any_signal = next(iter(sig.values()))
    text = (
        f"Accuracy against the gold judge on the same {rm['heldout_pairs']} held-out pairs (written "
        "by the offline sources' families), each pair judged in both orders and averaged; a tie "
        f"or an unreadable verdict counts half. {rm.get('confidence', 0.95):.0%} intervals resample "
        "prompts.\n\n"
        + _md_table(rows, [("signal", "signal"), ("all", "all"), *[(c, c) for c in sections]])
        + "".join(
            f"\n\n{u}: its accuracy is not measured here, not chance-level; a local judge "
            "needs a context that holds the judge prompt and both answers."
            for u in unmeasured
        )
        + "\n\nBiases. *One order*: accuracy from the order shown first alone (before averaging). "
        "*First-position rate*: share of one-order verdicts that pick the response shown first "
        "(0.5 = no position bias). *Length r*: mean per-prompt Pearson r between a response's "
        f"length and its round-robin score over {any_signal['length_prompts']} "
        "prompts' samples (gold's r on the same samples beside it). *Unread*: replies without "
        "[[A]]/[[B]]/[[C]], and questions not answered (a failed request; a prompt longer than "
        "a local judge's context: `error:too_long`), each scored as a tie.\n\n"
        + _md_table(
            bias,
            [
                ("signal", "signal"),
                ("one", "accuracy, one order"),
                ("first", "first-position rate"),
                ("len", "length r"),
                ("gold", "gold's length r"),
                ("unread", "unread verdicts"),
            ],
        )
    )
    bench = rm.get("benchmark")
    if bench:
        names = [n for n in sig if n in bench]
        subsets = sorted({k for n in names for k in bench[n]["by_subset"]})
        brows = [
            {
                "subset": sub,
                **{n: _iv(bench[n]["by_subset"].get(sub)) for n in names},
            }
            for sub in subsets
        ]
        brows.append({"subset": "all", **{n: _iv(bench[n]["accuracy"]) for n in names}})
        text += (
            f"\n\nOn `{bench['file']}` ({bench['rows']} rows; quarantined: "
            f"{bench['quarantined'] or 'none'}):\n\n"
            + _md_table(
                brows, [("subset", "subset"), *[(n, SIGNAL_NAMES.get(n, n)) for n in names]]
            )
        )
    return text


def controls_markdown(pol: dict[str, dict[str, dict[str, float]]], source: str = "") -> str:
    """What each control compares, with the win-rates that answer it. `pol`: {policy: {metric:
    {mean, lo, hi}}} in pipeline order, iterations last; `source`: where they come from, when
    not this run."""
    iters = [p for p in pol if p not in paths.BASELINE_POLICIES]
    rows = [
        (
            "offline_dpo",
            "offline DPO: off-policy pairs (other model families), annotator labels",
        ),
        (
            "onpolicy_dpo",
            "on-policy control: SFT's samples, labelled once by the RM, one DPO run on as many "
            "prompts as all iterations",
        ),
    ]
    if iters:
        rows.append((iters[-1], f"online iterative DPO, {len(iters)} rounds of fresh samples"))
    metrics = (("win", "win_rate_vs_sft"), ("gain", "gold_gain_vs_sft"))
    table = _md_table(
        [
            {"policy": p, "what": what, **{c: fmt_iv(pol[p][k]) for c, k in metrics if k in pol[p]}}
            for p, what in rows
            if p in pol
        ],
        [
            ("policy", "policy"),
            ("what", "data"),
            ("win", "win-rate vs SFT [95% CI]"),
            ("gain", "gold gain vs SFT [95% CI]"),
        ],
    )
    return (
        "Offline DPO vs the on-policy control isolates on-policy data (same DPO, same "
        "reference; other writers and labels). The on-policy control vs the last iteration "
        "isolates iterating: the same RM labels, but fresh samples of each improved policy "
        f"instead of one round on SFT's.{source}\n\n" + table
    )


def ablations_markdown(runs: list[dict[str, Any]]) -> str:
    rows = []
    for a in runs:
        f = a["final"]
        rows.append(
            {
                "ablation": a["ablation"],
                "change": a["change"],
                "seeds": a.get("seeds"),
                **{
                    k: fmt_iv(f[k], 1 if k == "mean_length_words" else 3)
                    for k, _ in (*METRICS, DISTANCE[0])
                    if k in f  # runs collected before a metric existed lack it
                },
            }
        )
        off = a.get("policies", {}).get("offline_dpo", {}).get("win_rate_vs_sft")
        if isinstance(off, dict):
            rows[-1]["offline_win_rate"] = fmt_iv(off, 3)
        rm = a.get("rm_eval") or {}
        if rm.get("length_reward_corr_rm") is not None:
            rows[-1]["rm_length_r"] = (
                f"{rm['length_reward_corr_rm']:.3f} ({rm['length_reward_corr_gold']:.3f})"
            )
    cols = [("ablation", "ablation"), ("change", "params changed"), ("seeds", "seeds")]
    cols += [(k, f"final iteration: {label}") for k, label in (*METRICS, DISTANCE[0])]
    cols += [("offline_win_rate", "offline DPO: win-rate vs SFT")]
    cols += [("rm_length_r", "RM's length r (gold's), Table 2 samples")]
    return _md_table(rows, cols)


class Section(NamedTuple):
    """One section of the report: shared by the HTML and markdown outputs."""

    title: str
    body: str
    figure: str | None = None
    """The key of its figure in the report's figures, or None."""


_VERDICT = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT MEASURED"}


def replicates_markdown(data: ReportData, iters: list[str]) -> str | None:
    """The loop's claims on this run beside each collected whole-pipeline replicate (other
    SFT/RM seeds), one column each: whether a claim is robust, without reading prose."""
    reps = replicate_runs(data)
    if not reps or data.judge != "gold":
        return None
    runs = [("this run", loop_verdicts(nested(data.policies.to_dicts()), iters))]
    for a in reps:
        # A collected run keeps its policies in pipeline order, iterations last (ablations.py).
        pol = a.get("policies", {})
        its = [p for p in pol if p not in paths.BASELINE_POLICIES]
        runs.append((a["ablation"], loop_verdicts(pol, its)))
    rows = [
        {"claim": claim, **{name: f"{_VERDICT[v[i][1]]}: {v[i][2]}" for name, v in runs}}
        for i, (claim, _, _) in enumerate(runs[0][1])
    ]
    return (
        "The loop's claims on this run and on each whole-pipeline replicate (SFT and the "
        "reward model trained with other seeds, collected as ablations; `rlhf ablations`):\n\n"
        + _md_table(rows, [("claim", "claim")] + [(n, n) for n, _ in runs])
    )


def _claims(data: ReportData) -> tuple[str, str | None] | None:
    body = "\n".join(
        f"- **{_VERDICT[c.holds]}** — {c.text}: {c.evidence}."
        + (f" *Why:* {c.why}." if c.holds is False and c.why else "")
        for c in data.claims
    )
    names = data.policies["policy"].to_list() if data.policies.height else []
    reps = replicates_markdown(data, [p for p in names if p not in paths.BASELINE_POLICIES])
    return (body + ("\n\n" + reps if reps else ""), None)


def _policies(data: ReportData) -> tuple[str, str | None] | None:
    if not data.policies.height:
        return None
    judged_by = {
        "gold": "Gold-judge metrics",
        "reward_model": "**Reward-model proxy** metrics (evaluate.judge=reward_model: the "
        "'gold' columns are the trained RM's scores, not ground truth)",
        "preference_model": "**Preference-model** metrics (evaluate.judge=preference_model: "
        "each response against SFT's, both orders; no pointwise score, so the gold columns "
        "are empty)",
        "llm": "**LLM-as-judge** metrics (evaluate.judge=llm: each response against SFT's, "
        "both orders; no pointwise score, so the gold columns are empty)",
    }.get(data.judge, f"Metrics judged by {data.judge}")
    return (
        f"{judged_by} on the held-out eval prompts; intervals are 95% two-level "
        "bootstrap intervals (seeds, then prompts). SFT's win-rate against itself is 0.5 by "
        "construction.\n\n" + policies_markdown(data.policies),
        "policies",
    )


def oracle_markdown(data: ReportData, oracle: dict[str, Any]) -> str | None:
    """Per iteration: the proxy loop's gold gain over SFT beside the oracle loop's (the
    `oracle_annotator` ablation), the share of it the proxy keeps, and the RM's accuracy on
    the samples it labelled."""
    pol = {r["policy"]: r for r in data.policies.to_dicts()}
    acc = {r["iteration"]: r.get("rm_accuracy") for r in data.onpolicy}
    theirs = oracle.get("policies", {})
    rows = []
    for it in [p for p in pol if p not in paths.BASELINE_POLICIES]:
        gain = theirs.get(it, {}).get("gold_gain_vs_sft")
        if not isinstance(gain, dict):
            continue
        ours = pol[it]["gold_gain_vs_sft"]
        rows.append(
            {
                "iteration": it,
                "proxy": fmt(pol[it], "gold_gain_vs_sft"),
                "oracle": fmt_iv(gain),
                "kept": f"{ours / gain['mean']:.2f}" if gain["mean"] > 0 else "—",
                "rm_accuracy": acc.get(it),
            }
        )
    if not rows:
        return None
    table = _md_table(
        rows,
        [
            ("iteration", "iteration"),
            ("proxy", "gold gain vs SFT, RM-ranked [95% CI]"),
            ("oracle", "gold gain vs SFT, annotator-ranked [95% CI]"),
            ("kept", "share of the oracle's gain kept"),
            ("rm_accuracy", "RM accuracy on own samples"),
        ],
    )
    ours = data.per_seed["seed"].n_unique() if "seed" in data.per_seed.columns else "?"
    return (
        "The paper's ideal loop queries the preference oracle online (section 1.2); the reward "
        "model stands in for it. Here the oracle is cheap: the world's human-like annotator, "
        "noise included, ranks each iteration's samples instead of the RM, all else equal "
        f"(ablation `{ORACLE}`, {oracle.get('seeds')} seeds; this run {ours}). Its gain is the "
        "upper bound of the proxy loop's; the share kept falls where the RM misranks the "
        "policy's own samples.\n\n" + table
    )


def _oracle(data: ReportData) -> tuple[str, str | None] | None:
    oracle = data.ablation(ORACLE)
    if oracle is None or not data.policies.height:
        return None
    md = oracle_markdown(data, oracle)
    return (md, None) if md else None


def kl_budget_markdown(rows: list[dict[str, Any]]) -> str:
    """Per budgeted round and seed: the budget against the KL its checks reached and against
    the evaluation's KL of the policy it made (other prompts, more samples)."""
    shown = [
        {
            **r,
            "stopped": "budget" if r["stopped"] else "end of training",
            "within": "—"
            if r["eval_kl"] is None
            else ("yes" if r["eval_kl"] <= r["budget"] else "no"),
        }
        for r in rows
    ]
    return (
        "Each DPO round stops once the policy's KL to SFT, checked on its own samples of "
        "held-out (reserve) prompts every few steps, reaches the round's cumulative budget "
        "or would pass it by the next check (`dpo.kl_budget`). The evaluation's KL is the "
        "same estimator on the eval prompts, with n samples each.\n\n"
        + _md_table(
            shown,
            [
                ("iteration", "iteration"),
                ("seed", "seed"),
                ("budget", "KL budget (nats)"),
                ("reached", "KL at the last check"),
                ("steps", "steps trained"),
                ("stopped", "stopped by"),
                ("eval_kl", "evaluation's KL to SFT"),
                ("within", "evaluation's KL within budget"),
            ],
        )
    )


def _kl_budget(data: ReportData) -> tuple[str, str | None] | None:
    return (kl_budget_markdown(data.kl_rounds), None) if data.kl_rounds else None


def _one_line(text: str, limit: int) -> str:
    """`text` as one table cell: whitespace collapsed, pipes escaped, cut at `limit` chars."""
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|")


def samples_markdown(df: pl.DataFrame, limit: int = 220) -> str:
    """Per category, the evaluation prompt where the policies' answers differ most in gold
    reward, and what each wrote for it (first seed, first sample): the numbers above as text."""
    parts = [
        "Per category, the evaluation prompt on which the policies' first samples (first seed) "
        "differ most in gold reward, and what each policy wrote for it."
    ]
    for (category,), rows in df.group_by("category", maintain_order=True):
        first = rows.row(0, named=True)
        parts.append(
            f"**{category}** — prompt `{first['prompt_id']}`: {_one_line(first['prompt'], limit)}\n"
        )
        parts.append(
            _md_table(
                [
                    {
                        "policy": r["policy"],
                        "gold": r["gold"],
                        "response": _one_line(r["response"], limit),
                    }
                    for r in rows.iter_rows(named=True)
                ],
                [("policy", "policy"), ("gold", "gold reward"), ("response", "response")],
            )
        )
    return "\n\n".join(parts)


def _samples(data: ReportData) -> tuple[str, str | None] | None:
    if not data.samples.height:
        return None
    return (samples_markdown(data.samples), None)


def curves_markdown(curves: dict[str, dict[str, list[tuple[int, float]]]]) -> str:
    """Per training run, its steps and the last logged value of its main curves."""
    keys = [
        ("loss", "loss"),
        ("accuracy", "RM accuracy"),
        ("rewards/margins", "DPO reward margin"),
        ("rewards/accuracies", "DPO reward accuracy"),
        ("kl_to_sft", "KL to SFT"),
    ]
    rows = []
    for run, series in curves.items():
        row: dict[str, Any] = {
            "run": run,
            "steps": max((s for s, _ in series.get("loss", [])), default=None),
        }
        row.update({k: series[k][-1][1] for k, _ in keys if series.get(k)})
        rows.append(row)
    return (
        "Every training stage logs its curves through DVCLive into `reports/curves/<run>` "
        "(`dvc plots show` draws each series; the stages' metrics files keep the last values "
        "for `dvc exp show`). Last logged values:\n\n"
        + _md_table(rows, [("run", "run"), ("steps", "last logged step"), *keys])
    )


def _curves(data: ReportData) -> tuple[str, str | None] | None:
    return (curves_markdown(data.curves), "curves") if data.curves else None


def _trend(data: ReportData) -> tuple[str, str | None] | None:
    if not data.policies.height:
        return None
    return "Each line is one seed's run of the online loop.", "trajectories"


def _controls(data: ReportData) -> tuple[str, str | None] | None:
    if not data.policies.height:
        return None
    if "onpolicy_dpo" in data.policies["policy"].to_list():
        return controls_markdown(nested(data.policies.to_dicts())), None
    run = data.ablation(CONTROL)
    if run is None or "onpolicy_dpo" not in run.get("policies", {}):
        return (
            "The on-policy control is off in this run (`onpolicy_control.enabled: false`, for "
            f"its minutes); `rlhf ablations run {CONTROL}` runs it, and once collected its "
            "numbers show here.",
            None,
        )
    source = (
        f" This run has the control off; the numbers are the `{CONTROL}` ablation's "
        f"({run['seeds']} seeds; its other policies are this run's, as nothing else changes)."
    )
    return controls_markdown(run["policies"], source), None


def _distance(data: ReportData) -> tuple[str, str | None] | None:
    if "kl_to_sft" not in data.policies.columns:
        return None
    rows = [
        {"policy": r["policy"], **{k: fmt(r, k) for k, _ in DISTANCE if r.get(k) is not None}}
        for r in data.policies.to_dicts()
        if r.get("kl_to_sft") is not None
    ]
    return (
        "Mean KL(policy || SFT) per eval response (the exact next-token KL summed along "
        "the policy's own samples, nats) and the reward model's mean score of the same "
        "responses. Against sqrt(KL), a proxy that keeps rising while gold flattens is the "
        "over-optimisation of Gao et al. 2023.\n\n"
        + _md_table(rows, [("policy", "policy"), *[(k, f"{lb} [95% CI]") for k, lb in DISTANCE]]),
        "overoptimisation",
    )


def _onpolicy(data: ReportData) -> tuple[str, str | None] | None:
    if not data.onpolicy:
        return None
    heldout = (data.rm_eval or {}).get("accuracy")
    rows = [{**r, "heldout_accuracy": heldout} for r in data.onpolicy]
    cols = [
        ("iteration", "iteration"),
        ("rm_accuracy", "RM accuracy on own samples"),
        ("heldout_accuracy", "RM held-out accuracy"),
        ("gold_pairs", "gold-untied sample pairs"),
        ("gold_mean", "gold: all samples"),
        ("gold_chosen", "gold: chosen (RM best-of-n)"),
        ("gold_rejected", "gold: rejected (RM worst-of-n)"),
        ("gold_best_of_n", "gold: gold's best-of-n"),
        ("proxy_chosen", "proxy: chosen"),
        ("proxy_rejected", "proxy: rejected"),
    ]
    return (
        "Per iteration, over every pair of one prompt's n samples that the gold judge does "
        "not tie: how often the RM (length-penalised score) orders them as gold does, next "
        "to its accuracy on held-out pairs written by the offline sources' model families. "
        "Then the gold and proxy reward of the pairs the loop trained on, and the gold of "
        "the best of n had gold picked it: the gap to the chosen column is what the RM's "
        "errors cost.\n\n" + _md_table(rows, cols) + _onpolicy_members(data),
        None,
    )


def _onpolicy_members(data: ReportData) -> str:
    """An ensemble RM's members one by one on the same samples (rm_eval's `onpolicy_members`)."""
    rm = data.rm_eval or {}
    per_iteration = rm.get("onpolicy_members") or {}
    if not per_iteration:
        return ""
    n = max(len(m["member_accuracy"]) for m in per_iteration.values())
    rows = [
        {
            "iteration": it,
            **{f"m{i}": a for i, a in enumerate(m["member_accuracy"])},
            "ensemble": m["accuracy"],
            "gold_pairs": m["gold_pairs"],
        }
        for it, m in per_iteration.items()
    ]
    rows.append(
        {
            "iteration": "held-out pairs",
            **{f"m{i}": a for i, a in enumerate(rm.get("member_accuracy", []))},
            "ensemble": rm.get("accuracy"),
        }
    )
    seed = next(iter(per_iteration.values()))["seed"]
    cols = [
        ("iteration", "samples of"),
        *[(f"m{i}", f"member {i} alone") for i in range(n)],
        ("ensemble", "the ensemble"),
        ("gold_pairs", "gold-untied sample pairs"),
    ]
    return (
        f"\n\nThe ensemble's members one by one on DPO seed {seed}'s samples (the same count, "
        "length penalty included), then on the held-out pairs: what averaging adds.\n\n"
        + _md_table(rows, cols)
    )


def _pair_stats(data: ReportData) -> tuple[str, str | None] | None:
    if not data.pair_stats:
        return None
    cols = [
        ("iteration", "iteration"),
        ("prompt_groups", "prompt groups (seed x prompt)"),
        ("n_pairs", "pairs"),
        ("drop_rate", "drop rate"),
        ("tie_rate", "all-tied rate"),
        ("mean_margin", "mean reward margin"),
        ("mean_chosen_length", f"chosen length ({data.length_unit})"),
        ("mean_rejected_length", f"rejected length ({data.length_unit})"),
        ("chosen_longer_rate", "chosen longer"),
    ]
    return _md_table(data.pair_stats, cols), "pairs"


def _rewards(data: ReportData) -> tuple[str, str | None] | None:
    if not data.rewards:
        return None
    cols = [
        ("iteration", "iteration"),
        ("responses", "responses"),
        ("mean_reward", "mean"),
        ("sd_reward", "sd"),
        ("p10", "p10"),
        ("p50", "median"),
        ("p90", "p90"),
    ]
    return _md_table(data.rewards, cols), "rewards"


def _length_bias(data: ReportData) -> tuple[str, str | None] | None:
    if not data.corr_summary:
        return None
    rm, gold = data.corr_summary["rm"], data.corr_summary["gold"]
    n = data.corr.height
    return (
        f"Per prompt, the Pearson correlation between response length and reward over its n "
        f"samples ({n} prompt groups; prompts whose samples all tie are left out). "
        f"Mean r: reward model {rm.mean:.3f} [{rm.lo:.3f}, {rm.hi:.3f}], gold judge "
        f"{gold.mean:.3f} [{gold.lo:.3f}, {gold.hi:.3f}].",
        "length_corr",
    )


def _rm_eval(data: ReportData) -> tuple[str, str | None] | None:
    if not (data.rm_eval and "accuracy" in data.rm_eval):
        return None
    rm = data.rm_eval
    rows = [{"section": k, "accuracy": v} for k, v in sorted(rm["accuracy_by_section"].items())]
    rows.append({"section": "all", "accuracy": rm["accuracy"]})
    for i, a in enumerate(rm.get("member_accuracy", [])):
        rows.append({"section": f"all, ensemble member {i} alone", "accuracy": a})
    if "accuracy_demonstrator_style" in rm:
        rows.append(
            {
                "section": "all, written in the policy's (tutor) style",
                "accuracy": rm["accuracy_demonstrator_style"],
            }
        )
    return (
        f"Accuracy against the gold judge on {rm['heldout_pairs']} held-out pairs written by the "
        "offline sources' families, per section; then on pairs drawn the same way in the SFT "
        "style.\n\n" + _md_table(rows, [("section", "section"), ("accuracy", "accuracy")]),
        None,
    )


def _table2(data: ReportData) -> tuple[str, str | None] | None:
    if not (data.rm_eval and "signals" in data.rm_eval):
        return None
    return table2_markdown(data.rm_eval), None


def _table1(data: ReportData) -> tuple[str, str | None] | None:
    if not data.table1:
        return None
    cols = [
        ("source", "source"),
        ("n_pairs", "#pairs"),
        ("n_prompts", "#prompts"),
        ("mean_prompt_turns", "prompt turns"),
        ("mean_prompt_length", "prompt length"),
        ("mean_chosen_length", "chosen length"),
        ("mean_rejected_length", "rejected length"),
    ]
    return _md_table(data.table1, cols), None


def _ablations(data: ReportData) -> tuple[str, str | None] | None:
    if not data.ablations:
        return f"Not shown: {data.ablations_note}.", None
    return (
        "Each row is one `dvc exp run` (see the README); the final iteration's "
        "metrics with 95% intervals.\n\n" + ablations_markdown(data.ablations),
        None,
    )


@dataclass(frozen=True)
class Part:
    """A kind of section, in report order: its title, how it is built from the report's data
    (None: the run has nothing for it), and whether the summary (reports/summary.md) and the
    README's results block show it."""

    title: str
    build: Callable[[ReportData], tuple[str, str | None] | None]
    summary: bool = False
    readme: bool = False


# readme: what a first visit needs (does the recipe hold here, and by how much).
PARTS = (
    Part("Claims of the paper, checked on this run", _claims, summary=True, readme=True),
    Part("Policies: gold reward and win-rate against SFT", _policies, summary=True, readme=True),
    Part("Per-iteration trend", _trend),
    Part("Controls", _controls, summary=True),
    Part("The oracle control: how much of the ideal loop's gain the proxy keeps", _oracle),
    Part("Distance from SFT and reward over-optimisation", _distance),
    Part("KL budget per round: target against reached", _kl_budget, summary=True),
    Part("Training curves", _curves),
    Part("What the policies write: one evaluation prompt per category", _samples),
    Part(
        "On-policy diagnostics: the reward model on the samples it labels", _onpolicy, summary=True
    ),
    Part("On-policy pair statistics", _pair_stats),
    Part("Reward distributions", _rewards),
    Part("Length bias of the reward model", _length_bias, summary=True),
    Part("Reward-model evaluation", _rm_eval, summary=True),
    Part("Preference signals against gold (the paper's Table 2)", _table2),
    Part("Preference mix (the paper's Table 1; lengths in words)", _table1),
    Part("Ablations", _ablations, summary=True),
)
SUMMARY_SECTIONS = tuple(p.title for p in PARTS if p.summary)
README_SECTIONS = tuple(p.title for p in PARTS if p.readme)


def build_sections(data: ReportData) -> list[Section]:
    """The report's sections, in order, for those parts the run has data for."""
    return [Section(p.title, *built) for p in PARTS if (built := p.build(data)) is not None]


def summary_markdown(sections) -> str:
    """The headline sections without figures: what the README's results block shows."""
    parts = []
    for s in sections:
        if s.title in SUMMARY_SECTIONS:
            parts.append(f"**{s.title}.**\n\n{s.body}\n")
    return "\n".join(parts)


def render_markdown(sections, figs: dict[str, Path], out_dir: Path) -> str:
    parts = ["# RLHF workflow report\n"]
    for title, body, fig in sections:
        parts.append(f"## {title}\n\n{body}\n")
        if fig and fig in figs:
            parts.append(f"![{title}]({figs[fig].relative_to(out_dir).as_posix()})\n")
    return "\n".join(parts)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}"""


def render_html(sections, figs: dict[str, Path]) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>RLHF workflow report</title><style>{CSS}</style></head><body>",
        "<h1>RLHF workflow report</h1>",
    ]
    # CommonMark plus GitHub tables, raw HTML off: text from data files is escaped, never run.
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    for title, body, fig in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>\n{md.render(body)}")
        if fig and fig in figs:
            b64 = base64.b64encode(figs[fig].read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{b64}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_plot_series(data: ReportData, out: Path) -> None:
    """CSV series for `dvc plots show` / `dvc plots diff` (see the plots section of dvc.yaml)."""
    out.mkdir(parents=True, exist_ok=True)
    if data.policies.height:
        _write_csv(
            data.policies.select(
                "policy", "step", *[c for k, _ in METRICS for c in (k, f"{k}_lo", f"{k}_hi")]
            ),
            out / "policies.csv",
        )
    if data.pair_stats:
        _write_csv(pl.DataFrame(data.pair_stats), out / "pairs.csv")
    if data.corr.height:
        bins = np.linspace(-1, 1, 21)
        rows = []
        for k in ("rm", "gold"):
            h, _ = np.histogram(data.corr[f"r_{k}"].drop_nulls().to_numpy(), bins=bins)
            rows += [
                {"judge": k, "r": round(float(c), 2), "prompts": int(n)}
                for c, n in zip((bins[:-1] + bins[1:]) / 2, h, strict=True)
            ]
        _write_csv(pl.DataFrame(rows), out / "length_reward_corr.csv")


def _write_csv(df: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.write_csv(tmp)
