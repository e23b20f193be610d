"""Data-parallel sampling and scoring on this machine: the real `generate` and `score` stages of
iteration 1 with 1 worker (`python`) vs 2 workers (`torchrun --standalone --nproc_per_node 2`),
side by side in one run, with the tables' hashes compared (they must be identical).

Run after `dvc repro`, from the repository root:

    python bench/workers.py

Prints wall seconds (start-up included), the speed-up and the scaling efficiency (speed-up / 2).
On a 2-core machine one worker already uses both cores through torch's threads: the gain is
what two processes overlap (Python, tokenising, sampling), not a second core.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from rlhf.core import paths

STAGES = {
    "generate": [
        "stages/generate.py", "--iteration", "iter_1", "--policy", "models/sft",
        "--prompts", str(paths.PROMPTS),
    ],
    "score": [
        "stages/score.py", "--iteration", "iter_1", "--rm", str(paths.REWARD_MODEL),
        "--generations", str(paths.iteration_dir("iter_1") / "generations.parquet"),
    ],
}  # fmt: skip
LAUNCHERS = {1: [sys.executable], 2: [str(Path(sys.executable).parent / "torchrun"),
                                      "--standalone", "--nproc_per_node", "2"]}  # fmt: skip


def main() -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads per process of the 2-worker arm (compute.threads; default: params.yaml's, "
        "so 2 x 2 threads on 2 cores); another count changes the last bits of the tables",
    )
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    params = yaml.safe_load(paths.PARAMS.read_text())
    # Shards of a few batches each, so that both workers get a share of every seed's work.
    params["generate"]["shard_prompts"] = 2 * params["generate"]["batch_prompts"]
    params["score"]["shard_rows"] = 10 * params["score"]["batch_size"]
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    two = tmp / "params.yaml"
    if args.threads:
        params.setdefault("compute", {})["threads"] = args.threads
        two = tmp / "params-2.yaml"
        two.write_text(yaml.safe_dump(params, sort_keys=False))
    seconds: dict[tuple[str, int], float] = {}
    digests: dict[tuple[str, int], str] = {}
    try:
        for stage, cmd in STAGES.items():
            for workers, launcher in LAUNCHERS.items():
                out = tmp / f"{stage}-{workers}.parquet"
                t = time.perf_counter()
                ps = two if workers == 2 else tmp / "params.yaml"
                subprocess.run(
                    [*launcher, *cmd, "--params", str(ps), "--out", str(out)],
                    check=True,
                    capture_output=True,
                )
                seconds[stage, workers] = time.perf_counter() - t
                digests[stage, workers] = hashlib.md5(out.read_bytes()).hexdigest()
                print(f"{stage:>8}, {workers} worker(s): {seconds[stage, workers]:6.1f} s")
            same = digests[stage, 1] == digests[stage, 2]
            speed = seconds[stage, 1] / seconds[stage, 2]
            print(
                f"RATIO {stage} 2 workers / 1: {speed:.2f}x, scaling efficiency "
                f"{speed / 2:.0%}; tables identical: {same}"
            )
            if not same and not args.threads:
                sys.exit(f"{stage}: 1 and 2 workers wrote different tables")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
