"""The paper's claims checked on a run, each with its evidence and, when it does not hold, the
run's own diagnostics that explain why."""

from __future__ import annotations

from typing import Any

from rlhf.analytics import ablations as ablations_lib
from rlhf.analytics.report_data import Claim, ReportData, fmt, fmt_iv
from rlhf.core.config import Params


def check_claims(data: ReportData, params: Params) -> list[Claim]:
    pol = {r["policy"]: r for r in data.policies.to_dicts()}
    claims = []
    iters = [p for p in params.iterations if p in pol]
    if iters and "offline_dpo" in pol:
        last, off = pol[iters[-1]], pol["offline_dpo"]
        holds = last["win_rate_vs_sft_lo"] > off["win_rate_vs_sft_hi"]
        claims.append(
            Claim(
                f"Iterative DPO ({iters[-1]}) beats offline DPO on gold win-rate vs SFT, "
                "with non-overlapping intervals",
                holds,
                f"{iters[-1]} {fmt(last, 'win_rate_vs_sft')} vs offline DPO "
                f"{fmt(off, 'win_rate_vs_sft')}",
            )
        )
    if "offline_dpo" in pol:
        off = pol["offline_dpo"]
        claims.append(
            Claim(
                "Offline DPO beats SFT (win-rate vs SFT above 0.5, interval excluding 0.5)",
                off["win_rate_vs_sft_lo"] > 0.5,
                f"offline DPO {fmt(off, 'win_rate_vs_sft')}",
                _why_offline(data, params, pol, iters),
            )
        )
    if iters:
        last = pol[iters[-1]]
        claims.append(
            Claim(
                f"Iterative DPO ({iters[-1]}) raises the gold reward over SFT (paired gain, "
                "interval above 0)",
                last["gold_gain_vs_sft_lo"] > 0,
                f"gain {fmt(last, 'gold_gain_vs_sft')}",
            )
        )
    if len(iters) > 1:
        first, last = pol[iters[0]], pol[iters[-1]]
        claims.append(
            Claim(
                f"The gold gain over SFT grows with iterations: {iters[-1]}'s paired gain above "
                f"{iters[0]}'s, with non-overlapping intervals",
                last["gold_gain_vs_sft_lo"] > first["gold_gain_vs_sft_hi"],
                f"{iters[0]} {fmt(first, 'gold_gain_vs_sft')}, "
                f"{iters[-1]} {fmt(last, 'gold_gain_vs_sft')}",
                _why_no_growth(data, pol, iters),
            )
        )
    if data.corr_summary:
        rm, gold = data.corr_summary["rm"], data.corr_summary["gold"]
        claims.append(
            Claim(
                "The reward model rewards length more than the gold judge does: a higher "
                "per-prompt length-reward correlation (paper Fig. 5)",
                rm.lo > gold.hi,
                f"mean per-prompt length-reward r: RM {rm.mean:.3f} [{rm.lo:.3f}, {rm.hi:.3f}], "
                f"gold {gold.mean:.3f} [{gold.lo:.3f}, {gold.hi:.3f}]",
                _why_no_length_bias(data),
            )
        )
    if data.judge != "gold":
        # Every claim above is about ground truth; the RM judging its own policies is not it.
        return [
            Claim(
                c.text,
                None,
                f"not measured: evaluate.judge is {data.judge}, not the gold judge (real prompts "
                "have none); its win-rates are in the policy table, labelled with its name",
            )
            for c in claims
        ]
    lp = [a for a in data.ablations if set(_changes(a)) == {"score.length_penalty"}]
    base = [a for a in data.ablations if a.get("ablation") == ablations_lib.BASELINE]
    if lp and base:
        # Whichever of the two runs has the penalty: the ablation adds it, or (the default
        # since the penalty is on) takes it away.
        pen, plain = (lp[0], base[0]) if _penalised(lp[0]) else (base[0], lp[0])
        a, b = pen["final"], plain["final"]
        shorter = a["mean_length_words"]["hi"] < b["mean_length_words"]["lo"]
        higher_lc = a["lc_win_rate_vs_sft"]["mean"] > b["lc_win_rate_vs_sft"]["mean"]
        claims.append(
            Claim(
                "A length penalty makes answers shorter and raises the length-controlled win-rate",
                shorter and higher_lc,
                f"length {a['mean_length_words']['mean']:.1f} vs {b['mean_length_words']['mean']:.1f} "
                f"words; LC win-rate {a['lc_win_rate_vs_sft']['mean']:.3f} vs "
                f"{b['lc_win_rate_vs_sft']['mean']:.3f}",
                _why_penalty(data, pen, plain),
            )
        )
    else:
        claims.append(
            Claim(
                "A length penalty makes answers shorter and raises the length-controlled win-rate",
                None,
                f"ablations: {data.ablations_note or 'no length_penalty or baseline run'}",
            )
        )
    return claims


# Why a claim fails, from the run's own diagnostics (issue: "a measured explanation in the
# report"). Each returns None when the diagnostics it needs are absent.


REPLICATE = "replicate_"
"""Collected ablations whose name starts so are whole-pipeline replicates (other SFT/RM seeds)."""


def loop_verdicts(
    pol: dict[str, dict[str, dict[str, float]]], iters: list[str]
) -> list[tuple[str, bool | None, str]]:
    """The loop's four claims on one run, from its per-policy intervals ({policy: {metric:
    {mean, lo, hi}}}: this run's, or a collected ablation's `policies`): (claim, verdict,
    the numbers that decide it); None where a policy or metric is missing."""
    iters = [p for p in iters if p in pol]
    last = pol.get(iters[-1]) if iters else None
    first = pol.get(iters[0]) if len(iters) > 1 else None
    off = pol.get("offline_dpo")

    def get(p: dict | None, k: str) -> dict[str, float] | None:
        v = (p or {}).get(k)
        return v if isinstance(v, dict) else None

    out: list[tuple[str, bool | None, str]] = []
    a, b = get(last, "win_rate_vs_sft"), get(off, "win_rate_vs_sft")
    out.append(
        ("last iteration beats offline DPO (win-rate vs SFT)",)
        + ((a["lo"] > b["hi"], f"{fmt_iv(a)} vs {fmt_iv(b)}") if a and b else (None, "—"))
    )
    out.append(
        ("offline DPO beats SFT (win-rate above 0.5)",)
        + ((b["lo"] > 0.5, fmt_iv(b)) if b else (None, "—"))
    )
    g = get(last, "gold_gain_vs_sft")
    out.append(
        ("last iteration's gold gain over SFT above 0",)
        + ((g["lo"] > 0, fmt_iv(g)) if g else (None, "—"))
    )
    f = get(first, "gold_gain_vs_sft")
    out.append(
        ("gold gain grows (last above first, intervals apart)",)
        + ((g["lo"] > f["hi"], f"{f['mean']:.3f} -> {g['mean']:.3f}") if f and g else (None, "—"))
    )
    return out


def nested(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """The report's flat policy rows (key, key_lo, key_hi) as {policy: {key: {mean, lo, hi}}}."""
    return {
        r["policy"]: {
            k: {"mean": r[k], "lo": r[f"{k}_lo"], "hi": r[f"{k}_hi"]}
            for k in ("win_rate_vs_sft", "gold_gain_vs_sft", "gold_mean")
            if r.get(k) is not None and f"{k}_lo" in r
        }
        for r in rows
    }


def replicate_runs(data: ReportData) -> list[dict[str, Any]]:
    """Collected whole-pipeline replicates, by name."""
    return sorted(
        (a for a in data.ablations if a.get("ablation", "").startswith(REPLICATE)),
        key=lambda a: a["ablation"],
    )


def _changes(run: dict[str, Any]) -> dict[str, Any]:
    """The params a collected ablation run changes ({} for the baseline)."""
    return ablations_lib.ABLATIONS.get(run.get("ablation", ""), ({}, ""))[0]


def _penalised(run: dict[str, Any]) -> bool:
    """Whether a collected run scored with a length penalty: its own change, else the default."""
    default = Params().score.length_penalty
    return _changes(run).get("score.length_penalty", default) > 0


def _ablations_changing(data: ReportData, key: str) -> list[dict[str, Any]]:
    """Collected ablations whose params change `key`, found by their params, not their names."""
    return [a for a in data.ablations if key in _changes(a)]


def _why_offline(
    data: ReportData, params: Params, pol: dict[str, dict[str, Any]], iters: list[str]
) -> str | None:
    off = pol["offline_dpo"]
    parts = []
    if off.get("kl_to_sft") is not None and iters and pol[iters[-1]].get("kl_to_sft") is not None:
        parts.append(
            f"offline DPO moved {off['kl_to_sft']:.3f} nats from SFT, {iters[-1]} "
            f"{pol[iters[-1]]['kl_to_sft']:.2f}: pairs written by other model families barely "
            "change the policy's own samples"
        )

    def n(a_pairs: int) -> int:
        return a_pairs or params.prompts.slice_size

    others = []
    runs = _ablations_changing(data, "offline_dpo.n_pairs")
    for a in sorted(runs, key=lambda a: n(_changes(a)["offline_dpo.n_pairs"])):
        wr = a.get("policies", {}).get("offline_dpo", {}).get("win_rate_vs_sft")
        if isinstance(wr, dict):
            others.append(f"{n(_changes(a)['offline_dpo.n_pairs'])} pairs {fmt_iv(wr)}")
    if others:
        parts.append(
            f"with other pair budgets than the default {n(params.offline_dpo.n_pairs)} "
            "(ablations), offline DPO's win-rate vs SFT is " + ", ".join(others)
        )
    return "; ".join(parts) or None


def _why_no_growth(
    data: ReportData, pol: dict[str, dict[str, Any]], iters: list[str]
) -> str | None:
    points = [
        (p, pol[p]["kl_to_sft"], pol[p]["gold_gain_vs_sft"])
        for p in iters
        if pol[p].get("kl_to_sft") is not None
    ]
    # Only runs that change how DPO moves the policy: replicates have another RM, and the
    # offline or length-penalty runs change something else than the distance travelled.
    for a in data.ablations:
        f = a.get("final", {})
        keys = _changes(a)
        if keys and all(k.startswith("dpo.") for k in keys) and "kl_to_sft" in f:
            points.append(
                (
                    f"{a['ablation']} ({a['final_iteration']}, {a.get('seeds', '?')} seed"
                    + ("" if a.get("seeds") == 1 else "s")
                    + ")",
                    f["kl_to_sft"]["mean"],
                    f["gold_gain_vs_sft"]["mean"],
                )
            )
    if len(points) < 2:
        return None
    acc = {r["iteration"]: r.get("rm_accuracy") for r in data.onpolicy}
    parts = [
        "KL to SFT and gold gain per iteration: "
        + ", ".join(f"{p} {kl:.2f} nats / {g:+.3f}" for p, kl, g in points if p in iters)
    ]
    if all(acc.get(p) is not None for p in iters):
        parts.append(
            "the RM's accuracy on each iteration's own samples "
            + ", ".join(f"{acc[p]:.3f}" for p in iters)
        )
    # The same loop with the world's annotator as the labeller: whether the loop can grow the
    # gain when its labeller is right (then the proxy RM is what holds it back).
    oracle = data.ablation(ablations_lib.ORACLE)
    gains = [(oracle or {}).get("policies", {}).get(p, {}).get("gold_gain_vs_sft") for p in iters]
    if oracle and all(gains):
        first, last = gains[0], gains[-1]
        text = (
            "ranked by the world's annotator instead of the RM (the oracle control, the same KL "
            f"budget) the gain goes {iters[0]} {first['mean']:+.3f} [{first['lo']:+.3f}, "
            f"{first['hi']:+.3f}] -> {iters[-1]} {last['mean']:+.3f} [{last['lo']:+.3f}, "
            f"{last['hi']:+.3f}]"
        )
        if first["hi"] < last["lo"]:
            text += ", intervals apart: the loop grows the gain when its labeller is right"
        ours = pol[iters[-1]].get("gold_gain_vs_sft")
        if ours is not None and last["mean"] > 0:
            text += (
                f"; this run keeps {ours / last['mean']:.0%} of the oracle loop's {iters[-1]} gain"
            )
        parts.append(text)
    peak = max(points, key=lambda t: t[2])
    further = [t for t in points if t[1] > peak[1] and t[0] != peak[0]]
    if further:
        parts.append(
            f"the gold gain peaks at {peak[1]:.2f} nats ({peak[0]}, {peak[2]:+.3f}) and every run "
            "that moved further from SFT gained less ("
            + ", ".join(f"{p} {kl:.2f} nats / {g:+.3f}" for p, kl, g in further)
            + "): past that distance the policy gains on the proxy RM, not on gold, so more "
            "iterations under a fixed RM stop adding gold (Gao et al. 2023)"
        )
    return "; ".join(parts)


def _why_no_length_bias(data: ReportData) -> str | None:
    gold = data.corr_summary.get("gold")
    parts = []
    if gold is not None and gold.hi < 0:
        parts.append(
            f"the gold judge itself prefers shorter answers in this world (r {gold.mean:.3f})"
        )
    rows = [r for r in data.table1 if r.get("source") != "total"]
    total = [r for r in data.table1 if r.get("source") == "total"]
    if rows and total:
        t = total[0]
        longer = sorted(
            (r for r in rows if r["mean_chosen_length"] > r["mean_rejected_length"]),
            key=lambda r: r["mean_rejected_length"] - r["mean_chosen_length"],
        )
        parts.append(
            "in the preference mix chosen answers average "
            f"{t['mean_chosen_length']:.1f} words against {t['mean_rejected_length']:.1f} "
            "for rejected"
            + (
                "; longer chosen answers only in "
                + ", ".join(
                    f"{r['source']} ({r['n_pairs']} of {t['n_pairs']} pairs, "
                    f"{r['mean_chosen_length']:.1f} vs {r['mean_rejected_length']:.1f})"
                    for r in longer
                )
                if longer
                else ""
            )
            + ": the RM learns the labels' length preference, which here is weaker than "
            "gold's brevity preference, not stronger"
        )
    verbose = _verbose(data, with_penalty=False)
    rm = (verbose or {}).get("rm_eval") or {}
    own = data.rm_eval or {}
    if rm.get("length_reward_corr_rm") is not None and own.get("length_reward_corr_rm") is not None:
        more = rm["length_reward_corr_rm"] > rm["length_reward_corr_gold"]
        parts.append(
            f"with annotators who prefer length ({verbose['ablation']}: {verbose['change']}), "
            f"the RM's per-prompt length r on Table 2's written samples is "
            f"{rm['length_reward_corr_rm']:.3f} against gold's {rm['length_reward_corr_gold']:.3f} "
            f"(this run's RM: {own['length_reward_corr_rm']:.3f} against "
            f"{own['length_reward_corr_gold']:.3f}): "
            + (
                "there the RM rewards length more than gold, as in the paper"
                if more
                else "even there the RM does not reward length more than gold"
            )
        )
    return "; ".join(parts) or None


def _verbose(data: ReportData, with_penalty: bool) -> dict[str, Any] | None:
    """The collected run in a world whose annotators prefer length (world.verbosity_bias
    changed), with or without the length penalty."""
    for a in data.ablations:
        keys = set(_changes(a))
        if "world.verbosity_bias" in keys and _penalised(a) == with_penalty:
            return a
    return None


def _why_penalty(data: ReportData, lp: dict[str, Any], base: dict[str, Any]) -> str | None:
    a, b = lp["final"], base["final"]
    gold = data.corr_summary.get("gold")
    rm = data.corr_summary.get("rm")
    parts = [
        f"its raw win-rate is {a['win_rate_vs_sft']['mean']:.3f} against "
        f"{b['win_rate_vs_sft']['mean']:.3f}"
    ]
    if gold is not None and rm is not None and gold.hi < 0 and rm.mean <= 0 and rm.lo <= gold.hi:
        parts.append(
            f"but both the gold judge (r {gold.mean:.3f}) and the RM (r {rm.mean:.3f}) already "
            "prefer shorter answers, so the penalty only buys brevity that gold rewards anyway, "
            "and the length-controlled win-rate, which removes exactly that credit, does not "
            "rise: a length penalty helps where the RM over-rewards length, which this run's RM "
            "does not"
        )
    v, vp = _verbose(data, with_penalty=False), _verbose(data, with_penalty=True)
    if v and vp and v.get("seeds") == vp.get("seeds"):
        with_lp, without = vp["final"], v["final"]

        def both(key: str, digits: int) -> str:
            return f"{with_lp[key]['mean']:.{digits}f} against {without[key]['mean']:.{digits}f}"

        parts.append(
            f"with annotators who prefer length ({v['ablation']}, {v.get('seeds')} seed(s)) the "
            f"penalty gives {both('mean_length_words', 1)} words and an LC win-rate of "
            f"{both('lc_win_rate_vs_sft', 3)} (raw {both('win_rate_vs_sft', 3)})"
        )
    return "; ".join(parts)
