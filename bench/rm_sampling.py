"""Reward-model training speed: uniformly random batches vs length-grouped batches
(`reward_model.group_by_length`), side by side in one run on the same pairs and start.

Run after `dvc repro` (it reads models/sft and data/mix/preferences.parquet):

    python bench/rm_sampling.py --pairs 3200

Prints seconds, steps per second and the final training loss of each, and the speed-up ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import datasets

from rlhf.core import paths
from rlhf.core.config import load_params
from rlhf.core.messages import to_trl_preference
from rlhf.core.schemas import read_table
from rlhf.models import train
from rlhf.models.checkpoints import load_reward_model, load_tokenizer
from rlhf.models.reward import pair_length


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=3200, help="pairs trained on, count")
    p.add_argument("--sft", default=str(paths.SFT_MODEL))
    p.add_argument("--mix", default=str(paths.PREFERENCES))
    args = p.parse_args()
    cfg = load_params().reward_model
    tcfg = dataclasses.replace(cfg.train, epochs=1.0)
    tok = load_tokenizer(args.sft)
    ds = datasets.Dataset(read_table("preferences", args.mix).select(["chosen", "rejected"]))
    ds = ds.shuffle(seed=0).select(range(min(args.pairs, len(ds))))
    ds = ds.map(to_trl_preference, remove_columns=ds.column_names).map(pair_length)
    seconds = {}
    for grouped in (False, True):
        model = load_reward_model(args.sft, tok.pad_token_id)
        t = time.perf_counter()
        _, summary = train.reward_model(model, tok, ds, tcfg, 0, group_by_length=grouped)
        seconds[grouped] = time.perf_counter() - t
        name = "group_by_length" if grouped else "random"
        print(
            f"{name:>16}: {seconds[grouped]:7.1f} s, {summary['steps'] / seconds[grouped]:5.2f} "
            f"steps/s, train loss {summary['train_loss']:.4f}"
        )
    print(f"speed-up of group_by_length: {seconds[False] / seconds[True]:.2f}x")


if __name__ == "__main__":
    main()
