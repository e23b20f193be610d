"""Controls that separate the mechanisms behind online iterative DPO (beside offline DPO, the
paper's baseline, in rlhf.models.policy).

The on-policy offline control samples the SFT policy once, labels the samples once with the
same reward model (best vs worst of n, as an iteration does) and runs one DPO from SFT on as
many prompts as all iterations together. Offline DPO vs this control: off-policy pairs written
by other models and labelled by annotators, against on-policy pairs labelled by the RM. This
control vs the last iteration: one round of labels on SFT's samples, against fresh samples of
each improved policy (iterating).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from rlhf.core import paths
from rlhf.core.config import Params
from rlhf.core.io import write_skipped
from rlhf.core.schemas import empty
from rlhf.models.policy import run_dpo
from rlhf.online.generation import generate
from rlhf.online.pairs import select_pairs
from rlhf.online.scoring import score
from rlhf.prompts.splits import read_split

CONTROL = "onpolicy_control"
OFF = "off (onpolicy_control.enabled: false); `rlhf ablations run onpolicy_control` runs it"


def onpolicy_control(
    params: Params,
    sft_dir: str | Path,
    rm_dir: str | Path,
    prompts_path: str | Path,
    out_dir: str | Path,
    pm_dir: str | Path | None = None,
    annotator: Callable[[pa.Table], np.ndarray] | None = None,
    curves: Path | None = None,
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """Run the control for every seed; returns the scored samples, the pairs trained on and its
    record: a summary per seed (`by_seed`), or under onpolicy_control.enabled=false why it was
    `skipped` (no samples, and `out_dir` holds only that reason, rlhf.core.io.write_skipped).
    Models go to `out_dir/seed_<s>`. The same generate, score, pairs and DPO settings as the
    iterations (`annotator`: the ranker under score.ranker=annotator, as for
    rlhf.online.scoring.score); DPO's reference is SFT. `curves`: DVCLive folder (per seed)."""
    cfg = params.onpolicy_control
    if not cfg.enabled:
        write_skipped(out_dir, OFF)
        return empty("scored"), empty("pairs"), {"skipped": OFF}
    if not cfg.prompt_splits:
        raise ValueError("onpolicy_control.prompt_splits is empty: the control has no prompts")
    prompts = pa.concat_tables(read_split(prompts_path, s) for s in cfg.prompt_splits)
    scored_all, pairs_all, summary = [], [], {}
    # Samples and scores in shards (rlhf.core.shards): a crash in a later seed's DPO keeps them.
    work = paths.shards("onpolicy_dpo")
    for s in params.seeds:
        sft = paths.replicate(sft_dir, s)
        gens = generate(params.generate, CONTROL, sft, prompts, s, work / "generate")
        scored = score(params.score, rm_dir, gens, f"seed_{s}", work / "score", pm_dir, annotator)
        pairs, report = select_pairs(params.pairs, CONTROL, scored)
        trained = run_dpo(
            params.dpo,
            sft,
            sft,
            pairs,
            paths.replicate_out(out_dir, s),
            f"{CONTROL}/seed_{s}",
            curves=None if curves is None else paths.replicate_out(curves, s),
        )
        summary[str(s)] = {
            "prompts": prompts.num_rows,
            **report,
            **{k: v for k, v in trained.items() if k != "log"},
        }
        scored_all.append(scored)
        pairs_all.append(pairs)
    return pa.concat_tables(scored_all), pa.concat_tables(pairs_all), {"by_seed": summary}
