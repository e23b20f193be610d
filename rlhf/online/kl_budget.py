"""A KL budget per DPO round: a trust region around SFT (Ziegler et al. 2019's KL target,
PPO's target KL, trust-region DPO). A fixed learning rate and beta give each seed its own step
size; past some distance the policy gains on the proxy reward model, not on gold (Gao et al.
2023). A budgeted round stops once the policy's KL to SFT, measured on its own samples of
held-out prompts with the estimator the evaluation uses, reaches the round's budget.

The check runs in the trainer (a `TrainerCallback`) every `dpo.kl_check_every` steps: one
sample for each of `dpo.kl_check_prompts` reserve-split prompts, then one forward pass of the
policy and of SFT over them. Its cost is that of generating and scoring those samples, on any
model size; with the defaults on the embedded model ~0.3 s a check.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from transformers import TrainerCallback

from rlhf.core.config import ConfigError, DPOStageConfig, GenerateConfig
from rlhf.core.seeds import seeded
from rlhf.online.generation import HFBackend, Sampling, kl_per_response

CHECK_SPLIT = "reserve"  # no iteration, control or evaluation samples these prompts


def round_budget(cfg: DPOStageConfig, iteration: str) -> float | None:
    """The cumulative KL budget (nats) of round `iteration` (iter_k: entry k, the last entry
    for later rounds), or None without a budget."""
    if not cfg.kl_budget:
        return None
    k = int(iteration.rsplit("_", 1)[-1])
    return cfg.kl_budget[min(k, len(cfg.kl_budget)) - 1]


def check_prompts(prompts: pa.Table, n: int, seed: int) -> list[list[dict]]:
    """`n` prompts of the reserve split for the KL checks, the same for every round and seed:
    taken in turn from each category (a keyed hash orders each), so a split dominated by one
    category still gives a mixed set."""
    rows = prompts.filter(pc.equal(prompts["split"], CHECK_SPLIT)).to_pylist()
    if not rows:
        raise ConfigError(
            f"dpo.kl_budget: its checks sample the {CHECK_SPLIT!r} prompt split, which is empty; "
            "add prompts to the pool, or set dpo.kl_budget: [] (no budget)"
        )

    def key(r: dict[str, Any]) -> str:
        return hashlib.sha1(f"{seed}:{r['prompt_id']}".encode()).hexdigest()

    by_cat: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=key):
        by_cat.setdefault(r["category"], []).append(r)
    picked: list[list[dict]] = []
    queues = [by_cat[c] for c in sorted(by_cat)]
    while len(picked) < n and any(queues):
        for q in queues:
            if q and len(picked) < n:
                picked.append(q.pop(0)["messages"])
    return picked


class KLBudget(TrainerCallback):
    """Stops a DPO round once the policy's KL to `sft` reaches `budget` (nats per response), or
    would pass it by the next check at the pace of the last two; records every check.

    Each check samples the same prompts with the same seed (common random numbers: successive
    checks differ by the policy, not by the draw), inside a forked RNG so training's random
    state is untouched. Under several processes every rank checks and the ranks average their
    estimates, so all stop at the same step."""

    def __init__(
        self,
        sft,
        tok,
        prompts: list[list[dict]],
        budget: float,
        every: int,
        sampling: GenerateConfig,
        seed_name: str,
    ):
        self.sft, self.tok, self.prompts = sft, tok, prompts
        self.budget, self.every = budget, every
        self.sampling = Sampling(
            1,
            sampling.temperature,
            sampling.top_p,
            sampling.top_k,
            sampling.max_new_tokens,
            seeded(f"{seed_name}/kl_check", sampling.seed),
        )
        self.trace: list[tuple[int, float]] = []
        self.stopped = False
        self._logged = 0  # the step of the last check given to the logs

    def measure(self, model) -> float:
        was_training = model.training
        model.eval()
        self.sft.to(model.device).eval()
        try:
            with torch.random.fork_rng(devices=[]):
                backend = HFBackend.of(model, self.tok, batch_prompts=len(self.prompts))
                outs = backend.generate(self.prompts, self.sampling, desc=None)
                kl = kl_per_response(
                    model, self.sft, self.tok, self.prompts, [g[0].text for g in outs], desc=None
                )
        finally:
            model.train(was_training)
        value = float(np.mean(kl))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([value], dtype=torch.float64)
            torch.distributed.all_reduce(t)
            value = float(t.item()) / torch.distributed.get_world_size()
        return value

    def _check(self, step: int, model, control) -> None:
        kl = self.measure(model)
        pace = kl - self.trace[-1][1] if self.trace else 0.0
        self.trace.append((step, kl))
        if kl >= self.budget or kl + max(pace, 0.0) > self.budget:
            self.stopped = True
            control.should_training_stop = True

    def start(self, model) -> bool:
        """The check at step 0, before the trainer exists: False when the input policy has
        already spent the budget, and the round trains no step."""
        kl = self.measure(model)
        self.trace.append((0, kl))
        self.stopped = kl >= self.budget
        return not self.stopped

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not self.stopped and state.global_step % self.every == 0:
            self._check(state.global_step, model, control)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The training curves (a later callback) get the KL of a check made at this step, once
        # (the Trainer's closing summary is logged at the last step again).
        step = state.global_step
        if logs is not None and self.trace and self.trace[-1][0] == step != self._logged:
            logs["kl_to_sft"] = self.trace[-1][1]
            if state.log_history:  # the Trainer kept its copy before the callbacks ran
                state.log_history[-1]["kl_to_sft"] = self.trace[-1][1]
            self._logged = step
        return control

    def record(self, steps: int) -> dict[str, Any]:
        """What the round's summary keeps: the budget, every (step, KL) check, the KL reached
        at the last check, the steps trained and whether the budget stopped the round."""
        return {
            "kl_budget": self.budget,
            "kl_checks": [[s, round(k, 6)] for s, k in self.trace],
            "kl_reached": round(self.trace[-1][1], 6) if self.trace else None,
            "kl_stopped": self.stopped,
            "kl_steps": steps,
        }
