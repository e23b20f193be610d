"""Decisions of the online loop that RLHFlow's bash scripts leave implicit: which reference each
DPO round is pulled towards, which pairs it trains on, and how many pairs the offline baseline
gets. Kept here, not in the stage scripts, so that tests reach them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlhf.core import paths
from rlhf.core.config import DPOStageConfig, Params
from rlhf.models.checkpoints import load_policy
from rlhf.models.policy import run_dpo
from rlhf.online.kl_budget import KLBudget, round_budget


def reference_for(cfg: DPOStageConfig, policy_in: str | Path, sft: str | Path) -> Path:
    """The DPO reference of a round: SFT (the paper: every round is pulled towards the same
    policy) or the round's own input policy (each round may move a full KL budget further)."""
    return Path(sft) if cfg.reference == "sft" else Path(policy_in)


def training_pairs(cfg: DPOStageConfig, pairs: pa.Table, earlier: pa.Table | None) -> pa.Table:
    """This round's pairs, after every earlier round's with dpo.history=accumulated."""
    if cfg.history == "accumulated" and earlier is not None:
        return pa.concat_tables([earlier, pairs])
    return pairs


def offline_pair_budget(params: Params) -> int:
    """Pairs the offline baseline draws from the mix: offline_dpo.n_pairs, or by default as many
    as one iteration trains on (one pair per prompt of a slice)."""
    return params.offline_dpo.n_pairs or params.prompts.slice_size


def dpo_round(
    params: Params,
    iteration: str,
    policy_in: str | Path,
    sft: str | Path,
    pairs: pa.Table,
    out: str | Path,
    check_prompts: list[list[dict]] | None = None,
    curves: Path | None = None,
) -> dict[str, Any]:
    """One DPO round for every seed: seed s trains its own replicate of the input policy on the
    pairs its own samples gave, against its reference; returns each seed's training summary.
    With dpo.kl_budget, each seed's round stops at the round's KL to its SFT replicate,
    measured on `check_prompts` (rlhf/online/kl_budget.py). `curves`: the round's DVCLive
    folder (one `seed_<s>` folder per seed)."""
    cfg = params.dpo
    limit = round_budget(cfg, iteration)
    if limit is not None and not check_prompts:
        raise ValueError("dpo.kl_budget needs the prompts its checks sample")
    summaries = {}
    for s in params.seeds:
        policy = paths.replicate(policy_in, s)
        sft_s = paths.replicate(sft, s)
        name = f"{iteration}/seed_{s}"

        def budget(ref, ref_dir: Path, tok, sft_s=sft_s, name=name) -> KLBudget:
            to = ref if ref_dir == Path(sft_s) else load_policy(sft_s)
            return KLBudget(
                to, tok, check_prompts, limit, cfg.kl_check_every, params.generate, name
            )

        summaries[str(s)] = run_dpo(
            cfg,
            policy,
            reference_for(cfg, policy, sft_s),
            pairs.filter(pc.equal(pairs["seed"], s)),
            paths.replicate_out(out, s),
            name,
            budget=budget if limit is not None else None,
            curves=None if curves is None else paths.replicate_out(curves, s),
        )
    return summaries
