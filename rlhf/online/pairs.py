"""On-policy pair selection among the n scored responses of each prompt."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pyarrow as pa

from rlhf.core.config import PairsConfig
from rlhf.core.schemas import PAIRS, failed_sample


def select_pairs(
    cfg: PairsConfig, iteration: str, scored: pa.Table
) -> tuple[pa.Table, dict[str, Any]]:
    """Chosen/rejected per prompt by penalised reward; identical texts, ties and margins below
    `cfg.min_margin` dropped, each counted; samples that failed at the engine left out, counted
    by kind."""
    groups: dict[tuple[int, str], list[dict]] = {}
    failed = Counter()
    cols = ["seed", "prompt_id", "prompt", "response", "penalized_reward", "length", "sample_idx"]
    has_reason = "finish_reason" in scored.column_names
    for r in scored.select(cols + ["finish_reason"] * has_reason).to_pylist():
        # A sample the engine failed to give (server backend) is no response: never a pair.
        if has_reason and failed_sample(r["finish_reason"]):
            failed[r["finish_reason"]] += 1
            continue
        groups.setdefault((r["seed"], r["prompt_id"]), []).append(r)
    pairs, drops = [], Counter()
    rngs: dict[int, random.Random] = {}
    for seed, pid in sorted(groups):
        # One stream per replicate: a replicate's pairs do not depend on which others ran.
        rng = rngs.setdefault(seed, random.Random(f"{cfg.seed}:{iteration}:seed_{seed}:pairs"))
        g = sorted(groups[(seed, pid)], key=lambda r: r["sample_idx"])
        if len(g) < 2:
            drops["single_response"] += 1
            continue
        by_reward = sorted(g, key=lambda r: (-r["penalized_reward"], r["sample_idx"]))
        if cfg.selection == "best_worst":
            c, r = by_reward[0], by_reward[-1]
        elif cfg.selection == "max_random":
            c, r = by_reward[0], rng.choice(by_reward[1:])
        else:
            a, b = rng.sample(g, 2)
            c, r = (a, b) if a["penalized_reward"] >= b["penalized_reward"] else (b, a)
        if c["response"].strip() == r["response"].strip():
            drops["identical_responses"] += 1
            continue
        if c["penalized_reward"] == r["penalized_reward"]:
            drops["tied_rewards"] += 1
            continue
        if c["penalized_reward"] - r["penalized_reward"] < cfg.min_margin:
            drops["small_margin"] += 1
            continue
        pairs.append(
            {
                "iteration": iteration,
                "seed": seed,
                "prompt_id": pid,
                "prompt": c["prompt"],
                "chosen": c["response"],
                "rejected": r["response"],
                "chosen_reward": c["penalized_reward"],
                "rejected_reward": r["penalized_reward"],
                "chosen_length": c["length"],
                "rejected_length": r["length"],
                "selection": cfg.selection,
            }
        )
    report = {
        "prompt_groups": len(groups),
        "pairs": len(pairs),
        "dropped": dict(sorted(drops.items())),
        "drop_rate": round(sum(drops.values()) / max(1, len(groups)), 4),
    }
    if failed:
        report["failed_samples"] = dict(sorted(failed.items()))
    return pa.Table.from_pylist(pairs, schema=PAIRS), report
