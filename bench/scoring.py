"""Reward-model scoring: batch size 1 (the reference implementation's way) vs batches of 64 in
input order (`score.batch_size`, the default) vs length-bucketed batches (`score.batch_tokens`),
on the same responses, side by side in one run.

Run after `dvc repro` (reads models/reward_model and iteration 1's generations):

    python bench/scoring.py --rows 2048

Prints responses per second of each and the ratios, and the largest score difference against
input-order batches (length bucketing changes only float rounding).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rlhf.core import paths
from rlhf.core.schemas import read_table
from rlhf.online.scoring import RewardScorer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument("--rows", type=int, default=2048, help="responses scored, count")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batch-tokens", type=int, default=8192)
    args = p.parse_args()
    gens = read_table("generations", paths.iteration_dir("iter_1") / "generations.parquet")
    gens = gens.slice(0, args.rows)
    prompts, responses = gens.column("prompt").to_pylist(), gens.column("response").to_pylist()
    n = len(responses)
    scorer = RewardScorer(args.rm, args.batch_size)
    scorer.score_members(prompts[:64], responses[:64], desc="warm-up")
    seconds, scores = {}, {}
    for name, size, tokens in (
        ("batch size 1", 1, 0),
        (f"batches of {args.batch_size}, input order", args.batch_size, 0),
        (f"length-bucketed, {args.batch_tokens} tokens", args.batch_size, args.batch_tokens),
    ):
        scorer.batch_size = size
        t = time.perf_counter()
        scores[name] = scorer.score_members(prompts, responses, desc=name, batch_tokens=tokens)
        seconds[name] = time.perf_counter() - t
        print(f"{name:>34}: {seconds[name]:6.1f} s, {n / seconds[name]:7.0f} responses/s")
    one, plain, bucketed = seconds.values()
    a, b = list(scores.values())[1:]
    print(f"RATIO scoring length-bucketed / batch size 1: {one / bucketed:.1f}x (target >= 10x)")
    print(f"RATIO scoring length-bucketed / input-order batches: {plain / bucketed:.2f}x")
    print(f"largest score difference, bucketed vs input order: {np.abs(a - b).max():.2e}")


if __name__ == "__main__":
    main()
