"""What the reproducible compute mode costs: the embedded model's training steps and sampling,
pinned (`compute.reproducible: true`: AVX2 kernels, `compute.threads` threads) vs free (each
library picks this CPU's widest kernels), side by side in one run, each arm in a fresh process
(the variables act only when torch loads).

    python bench/compute_mode.py --steps 40

Needs no pipeline outputs: a model of the embedded shape (Llama, hidden 128, 4 layers, vocab 768)
with random weights and tokens. Prints each arm's ISA, threads and seconds, then the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from rlhf.core import compute
from rlhf.core.config import ComputeConfig

WORKLOAD = r"""
import json, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM
steps = int(sys.argv[1])
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=768, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
model = LlamaForCausalLM(cfg)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randint(0, 768, (64, 100))
t = time.perf_counter()
for _ in range(steps):
    model(input_ids=x, labels=x).loss.backward()
    opt.step(); opt.zero_grad()
train_s = time.perf_counter() - t
model.eval()
t = time.perf_counter()
with torch.inference_mode():
    model.generate(input_ids=x[:32, :40], do_sample=True, max_new_tokens=32, min_new_tokens=32,
                   num_return_sequences=8, pad_token_id=0)
gen_s = time.perf_counter() - t
print(json.dumps({"isa": torch.backends.cpu.get_cpu_capability(),
                  "threads": torch.get_num_threads(), "train_s": train_s, "generate_s": gen_s}))
"""


def arm(steps: int, pinned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in compute.environment(ComputeConfig())}
    if pinned:
        env.update(compute.environment(ComputeConfig()))
    out = subprocess.run(
        [sys.executable, "-c", WORKLOAD, str(steps)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40, help="training steps per arm (batch 64 x 100)")
    p.add_argument("--repeats", type=int, default=2, help="alternating runs of each arm")
    args = p.parse_args()
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.repeats):
        for pinned in (False, True):
            runs[pinned].append(arm(args.steps, pinned))
    best = {
        k: {m: min(r[m] for r in v) for m in ("train_s", "generate_s")} for k, v in runs.items()
    }
    for pinned, label in ((False, "free"), (True, "pinned")):
        r = runs[pinned][0]
        print(
            f"{label:>6}: ISA {r['isa']}, {r['threads']} threads, {args.steps} training steps "
            f"{best[pinned]['train_s']:.2f} s, sampling {best[pinned]['generate_s']:.2f} s "
            f"(best of {args.repeats})"
        )
    for m in ("train_s", "generate_s"):
        print(f"RATIO compute mode {m[:-2]} pinned / free: {best[True][m] / best[False][m]:.2f}x")


if __name__ == "__main__":
    main()
