"""Ablations as DVC experiments: one `dvc exp run` per ablation, collected into one table.

    rlhf ablations list                  # each ablation and its exact dvc command
    rlhf ablations run [NAME ...]        # dvc exp run --temp -n abl-NAME -S key=value ...
    rlhf ablations collect               # -> reports/ablations.json (then: dvc repro report)

Each experiment changes only the RLHF part, so DVC reuses the cached world, mix, SFT and
reward model and re-runs the iterations. Results are read back from the experiments' git refs
(metrics files are git-tracked), so collecting needs no checkout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from rlhf.core import paths
from rlhf.core.config import ConfigError, Params, parse_params, to_dict
from rlhf.core.io import write_json

# name -> (params changed, what it tests). The paper's defaults are the baseline.
ABLATIONS: dict[str, tuple[dict[str, Any], str]] = {
    # The default scores with the paper's length penalty (0.02 per character at this RM's
    # scale, params.yaml); this is the loop without it.
    "no_length_penalty": (
        {"score.length_penalty": 0.0},
        "no length penalty: the RM's raw reward picks chosen and rejected",
    ),
    "reference_previous": ({"dpo.reference": "previous"}, "DPO reference = previous policy"),
    "history_accumulated": ({"dpo.history": "accumulated"}, "train on all pairs so far"),
    # Larger DPO steps: whether moving further from SFT per iteration buys more gold.
    "dpo_lr_2x": ({"dpo.train.lr": 1e-4}, "DPO learning rate 1e-4 instead of 5e-5"),
    # The paper's loop: no round is stopped by its KL to SFT (rlhf/online/kl_budget.py).
    "no_kl_budget": ({"dpo.kl_budget": []}, "no KL budget per DPO round (the paper's loop)"),
    # The offline baseline's pair budget (params.yaml says why 6000 x 1 epoch): one iteration's
    # pairs with the loop's DPO settings, and half the default.
    "offline_pairs_one_iteration": (
        {"offline_dpo.n_pairs": 0, "offline_dpo.epochs": 0.0},
        "offline DPO on one iteration's worth of mix pairs, with the loop's epochs",
    ),
    "offline_pairs_3000": ({"offline_dpo.n_pairs": 3000}, "offline DPO on 3000 mix pairs"),
    "n_2": ({"generate.n": 2}, "2 samples per prompt instead of 8"),
    "temperature_0.7": ({"generate.temperature": 0.7}, "sampling temperature 0.7"),
    "best_random": ({"pairs.selection": "max_random"}, "best vs a random other response"),
    # The paper's section 2 alternative to the BT RM as the loop's labeller: the pairwise
    # preference model's round robin over the n samples (56 model calls per prompt at n = 8).
    "ranker_preference_model": (
        {"score.ranker": "preference_model"},
        "the preference model ranks the n samples (round robin) instead of the reward model",
    ),
    # The paper's length story needs annotators who prefer long answers. This world's gold
    # judge prefers concise ones and only the UltraFeedback-like AI rater has a verbosity bias
    # (2.4 K of 29 K mix pairs): the default RM barely rewards length. Here the rater's bias is
    # 2.5x and it rates 3x the prompts (7.5 K of 34 K pairs; chosen answers then average 18.8
    # words against 17.8 for rejected, instead of 17.9 vs 19.2), then the same with the
    # length penalty: whether the RM learns the bias, and whether the penalty undoes it.
    "verbose_annotators": (
        {
            "world.verbosity_bias": 0.03,
            "world.sizes.ultrafeedback": 8100,
            "score.length_penalty": 0.0,
        },
        "the AI rater's verbosity bias 0.03 per word (not 0.012) on 8100 prompts (not 2700), "
        "no length penalty",
    ),
    "verbose_annotators_length_penalty": (
        {"world.verbosity_bias": 0.03, "world.sizes.ultrafeedback": 8100},
        "verbose_annotators with the default length penalty (0.02 per character)",
    ),
    # The paper's ideal (section 1.2): the online oracle, here the world's human-like annotator
    # with its noise (rlhf/world/annotator.py), ranks each iteration's samples instead of the
    # proxy RM, all else equal: the upper bound of the proxy loop's gain. Without the length
    # penalty: it corrects the RM's length bias in the RM's units (~1.8 reward spread), and on
    # the annotator's gold scale 0.02 per character outweighs gold itself (measured with it:
    # the oracle loop's gain 0.001 / 0.006 / 0.008, below the proxy loop's).
    "oracle_annotator": (
        {"score.ranker": "annotator", "score.length_penalty": 0.0},
        "the world's annotator (noise included) ranks the samples instead of the reward model "
        "(no length penalty: the penalty is in the RM's units)",
    ),
    # Not an RLHF setting: SFT and the RM retrained with other seeds (so nothing after `base`
    # comes from the cache), to see whether the orderings survive their training noise.
    "replicate_sft_rm_seed_1": (
        {"sft.seed": 1, "reward_model.seed": 1},
        "whole-pipeline replicate: SFT and RM trained with seed 1",
    ),
    "replicate_sft_rm_seed_2": (
        {"sft.seed": 2, "reward_model.seed": 2},
        "whole-pipeline replicate: SFT and RM trained with seed 2",
    ),
    # The paper's labeller: one reward model (of 2 epochs, the default before the ensemble of
    # three 1-epoch members), all else equal.
    "single_reward_model": (
        {"reward_model.ensemble": 1, "reward_model.train.epochs": 2.0},
        "one reward model of 2 epochs instead of the mean of 3 of 1 epoch",
    ),
    # The on-policy offline control (rlhf/online/controls.py), off in the default run for its
    # ~5 min: SFT's samples on as many fresh prompts as all iterations, labelled once by the
    # RM, one DPO run. Nothing else changes, so its other policies are the default's.
    "onpolicy_control": (
        {"onpolicy_control.enabled": True},
        "the on-policy offline control: one round of RM labels on SFT's own samples",
    ),
    # Bagging: each ensemble member on part of the mix, so that three members cost about one
    # 2-epoch RM: two thirds each (every pair in two members) for one epoch, or a third each
    # (disjoint) for two.
    "rm_members_two_thirds": (
        {"reward_model.member_share": 0.6667},
        "each RM member on two thirds of the pairs (every pair in two members)",
    ),
    "rm_members_disjoint_thirds": (
        {"reward_model.member_share": 0.3333, "reward_model.train.epochs": 2.0},
        "each RM member on a disjoint third of the pairs, 2 epochs",
    ),
    # Cheaper members by depth instead of data: the embeddings and the bottom 2 of 4 blocks
    # stay the SFT model's, so no backward pass runs below them.
    "rm_frozen_two_blocks": (
        {"reward_model.frozen_layers": 2},
        "each RM member trains only its top 2 of 4 blocks and its head",
    ),
    # The members as TRL computes them: each pair's prompt twice, in a quarter more tokens (the
    # same loss up to float rounding as the default's shared-prefix rows).
    "rm_two_rows_a_pair": (
        {"reward_model.shared_prefix": False},
        "each RM pair as TRL's two rows, its prompt computed for each side",
    ),
}
ORACLE = "oracle_annotator"
"""The ablation the report reads as the oracle control (rlhf.analytics.render)."""
CONTROL = "onpolicy_control"
"""The ablation the report reads the on-policy control from when the run has it off."""
PREFIX = "abl-"
# Settings that change no number an ablation compares: the report's presentation, and how work
# is cut and started (shard sizes and launchers; tests/online/test_workers.py shows the tables are
# byte-identical for any of them).
# The compute mode (reproducible, isa, threads) is fingerprinted: it changes the last bits.
UNFINGERPRINTED = (
    "report.",
    "compute.launcher",
    "compute.sample_launcher",
    "generate.shard_prompts",
    "score.shard_rows",
)


RM_EVAL_KEYS = ("accuracy", "length_reward_corr_rm", "length_reward_corr_gold")
BASELINE = "baseline"  # the committed params, re-run only when --seeds differs from them


def command(
    name: str, extra: dict[str, Any] | None = None, params_file: Path = paths.PARAMS
) -> list[str]:
    changes = {**(ABLATIONS[name][0] if name != BASELINE else {}), **(extra or {})}
    cmd = ["dvc", "exp", "run", "--temp", "-n", f"{PREFIX}{name}"]
    present = _flatten(yaml.safe_load(Path(params_file).read_text()) or {}) if changes else {}
    for k, v in changes.items():
        # A key params.yaml leaves at its default (config.py) must be added, not overridden:
        # DVC's -S refuses a missing key unless it is written +key=value.
        plus = "" if k in present else "+"
        cmd += ["-S", f"{plus}{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return cmd


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def settings(params: Params) -> dict[str, Any]:
    """Every setting that can change a result, defaults filled in, as dotted keys. Filling the
    defaults makes a run from before a key existed compare equal on that key."""
    return {k: v for k, v in _flatten(to_dict(params)).items() if not k.startswith(UNFINGERPRINTED)}


NUMERICS = 3
"""The code's numerics epoch: raised by a change that alters every result at the same params
(2: the reproducible compute mode and length-grouped batches; 3: the RM's shared-prefix rows),
so that ablations collected by older code are reported as stale instead of beside numbers they
were not run with."""


_HERE = "rlhf/analytics/ablations.py"  # where a run's own code states its numerics epoch


def numerics_of(code: str | None) -> int | None:
    """The NUMERICS a version of this module's text states, or None."""
    found = re.search(r"^NUMERICS = (\d+)", code or "", re.MULTILINE)
    return int(found.group(1)) if found else None


def fingerprint(params: Params) -> str:
    """A short hash of the :func:`settings` that differ from their defaults and of the numerics
    epoch: which params.yaml and code a collected table belongs to. A key added later at its
    default (the old behaviour) leaves the hash, and so the collected ablations, as they were."""
    defaults = settings(parse_params({}))
    changed = {k: v for k, v in settings(params).items() if k not in defaults or defaults[k] != v}
    changed["numerics"] = NUMERICS
    text = json.dumps(changed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout


def experiment_refs(root: Path) -> dict[str, str]:
    """abl-* experiment name -> its git ref (the newest one per name)."""
    out = _git(
        root, "for-each-ref", "--sort=committerdate", "--format=%(refname)", "refs/exps"
    ).split()
    refs = {}
    for ref in out:
        name = ref.rsplit("/", 1)[-1]
        if name.startswith(PREFIX):
            refs[name[len(PREFIX) :]] = ref
    return refs


def _read_at(root: Path, rev: str, path: str) -> str | None:
    try:
        return _git(root, "show", f"{rev}:{path}")
    except subprocess.CalledProcessError:
        return None


def _run_summary(root: Path, rev: str | None, name: str, change: str) -> dict[str, Any] | None:
    """Metrics of every policy at `rev` (None: the working tree), with that run's params."""

    def read(path: str) -> str | None:
        if rev is None:
            f = root / path
            return f.read_text() if f.exists() else None
        return _read_at(root, rev, path)

    params_text = read(str(paths.PARAMS))
    if params_text is None:
        return None
    params = yaml.safe_load(params_text)
    numerics = numerics_of(read(_HERE))
    iters = list(params.get("iterations", {}))
    policies = {}
    for p in [*paths.BASELINE_POLICIES, *iters]:
        text = read(paths.eval_metrics(p).as_posix())
        if text and "skipped" not in (m := json.loads(text)):
            policies[p] = m
    if not iters or iters[-1] not in policies:
        return None
    rm_text = read(paths.RM_EVAL.as_posix())
    rm = json.loads(rm_text) if rm_text else {}
    return {
        "ablation": name,
        "change": change,
        "params": params,
        "numerics": numerics,
        "rev": rev or "workspace",
        "seeds": len(params.get("seeds", [0])),
        "final_iteration": iters[-1],
        "final": {
            k: v
            for k, v in policies[iters[-1]].items()
            if isinstance(v, dict) and {"mean", "lo", "hi"} <= set(v)
        },
        "policies": {
            p: {k: m[k] for k in ("gold_mean", "win_rate_vs_sft", "gold_gain_vs_sft") if k in m}
            for p, m in policies.items()
        },
        # The run's RM on Table 2's written samples: its length preference beside gold's.
        "rm_eval": {k: rm[k] for k in RM_EVAL_KEYS if k in rm},
    }


def _check_run(run: dict[str, Any], current: dict[str, Any], allowed: set[str]) -> str | None:
    """Why a run cannot be compared with the current params.yaml, or None when it can: its
    settings may differ only in the keys its ablation changes (and `seeds`, via --seeds), and
    its code must have this code's numerics epoch: a default that changed the numbers (say, the
    RM's shared-prefix rows) leaves an older run's params.yaml looking current."""
    if run["numerics"] != NUMERICS:
        return (
            f"run by code of numerics epoch {run['numerics']}, this code's is {NUMERICS} "
            f"(NUMERICS in {_HERE})"
        )
    try:
        theirs = settings(parse_params(run["params"]))
    except ConfigError as e:
        return f"its params.yaml is no longer valid: {e}"
    extra = [k for k in differing(theirs, current) if k not in allowed]
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        return f"run with other settings than params.yaml: {shown}"
    return None


def collect(
    root: Path = Path("."), out: Path | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Read the finished experiments into reports/ablations.json; returns (runs, stale). Only
    runs whose settings match the current params.yaml except for their own change are kept;
    the others are listed under `stale` with the keys that differ (re-run them:
    `rlhf ablations run NAME`)."""
    root = Path(root)
    current_params = parse_params(yaml.safe_load((root / paths.PARAMS).read_text()) or {})
    current = settings(current_params)
    runs, stale = [], []
    refs = experiment_refs(root)
    # A seed-matched baseline experiment (run with --seeds) beats the working tree's run, so
    # that every row of the table has the same seeds.
    found = [
        _run_summary(root, refs[BASELINE], BASELINE, "params.yaml as committed, same seeds")
        if BASELINE in refs
        else _run_summary(root, None, BASELINE, "params.yaml as committed")
    ]
    for name in ABLATIONS:
        if name in refs:
            change = ", ".join(f"{k}={v}" for k, v in ABLATIONS[name][0].items())
            found.append(_run_summary(root, refs[name], name, change))
    for run in found:
        if run is None:
            continue
        keys = set(ABLATIONS[run["ablation"]][0]) if run["ablation"] in ABLATIONS else set()
        why = _check_run(run, current, keys | {"seeds"})
        del run["params"], run["numerics"]
        if why:
            stale.append({"ablation": run["ablation"], "rev": run["rev"], "reason": why})
        else:
            runs.append(run)
    save(out or root / paths.ABLATIONS, current_params, runs, stale)
    return runs, stale


def save(path: Path, params: Params, runs: list[dict], stale: list[dict]) -> None:
    """Write collected runs with what :func:`load` checks them against: the fingerprint and
    the params' settings in full."""
    write_json(
        path,
        {
            "params_fingerprint": fingerprint(params),
            "settings": _json_safe(settings(params)),
            "runs": runs,
            "stale": stale,
        },
    )


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


def load(root: Path, params: Params, path: Path | None = None) -> tuple[list[dict], str | None]:
    """The collected runs if they belong to `params`, else no runs and the reason."""
    f = path or root / paths.ABLATIONS
    if not f.exists():
        return [], "not collected yet: run `rlhf ablations run` and then `dvc repro report`"
    saved = json.loads(f.read_text())
    if saved.get("params_fingerprint") != fingerprint(params) or "settings" not in saved:
        return [], (
            f"{f.name} was collected for other params than this params.yaml (a profile switch "
            "or an edit since) or by older code (another numerics epoch, no settings): re-run "
            "the ablations, then `rlhf ablations collect`"
        )
    # The fingerprint hashes only what differs from the defaults, so a changed default leaves
    # it alone; the settings written out in full show it.
    theirs, now = saved["settings"], _json_safe(settings(params))
    moved = sorted(k for k in now.keys() & theirs.keys() if theirs[k] != now[k])
    if moved:
        return [], (
            f"{f.name} was collected when {', '.join(moved[:5])} had other values (a default "
            "changed since): re-run the ablations, then `rlhf ablations collect`"
        )
    return saved.get("runs", []), None


def cmd(args: argparse.Namespace) -> int:
    extra = {"seeds": [int(s) for s in args.seeds.split(",")]} if args.seeds else None
    if args.action == "list":
        for name, (_, what) in ABLATIONS.items():
            print(f"{name:22s} {what}\n{'':22s} {' '.join(command(name, extra))}")
        return 0
    if args.action == "run":
        names = args.names or list(ABLATIONS)
        if extra and BASELINE not in names:
            names = [BASELINE, *names]  # compare like with like: the baseline on the same seeds
        unknown = [n for n in names if n not in ABLATIONS and n != BASELINE]
        if unknown:
            print(f"unknown ablation(s) {unknown}; known: {list(ABLATIONS)}", file=sys.stderr)
            return 2
        for i, name in enumerate(names, 1):
            c = command(name, extra)
            print(f"[{i}/{len(names)}] {' '.join(c)}", flush=True)
            if subprocess.run(c).returncode != 0:
                print(f"ablation {name} failed", file=sys.stderr)
                return 1
        print("done; now: rlhf ablations collect && dvc repro report")
        return 0
    runs, stale = collect(Path(args.root))
    print(f"{len(runs)} runs -> {paths.ABLATIONS}")
    for s in stale:
        print(f"left out {s['ablation']} ({s['rev']}): {s['reason']}", file=sys.stderr)
    for r in runs:
        f = r["final"]
        print(
            f"{r['ablation']:22s} win-rate {f['win_rate_vs_sft']['mean']:.3f} "
            f"LC {f['lc_win_rate_vs_sft']['mean']:.3f} length {f['mean_length_words']['mean']:.1f}"
        )
    return 0


def add_parser(sub) -> None:
    a = sub.add_parser("ablations", help="run and collect the ablations as DVC experiments")
    a.add_argument("action", choices=["list", "run", "collect"])
    a.add_argument("names", nargs="*", help="ablations to run (default: all)")
    a.add_argument("--seeds", default="", help="e.g. 0 or 0,1,2: override `seeds` for the runs")
    a.add_argument("--root", default=".")
    a.set_defaults(func=cmd)
