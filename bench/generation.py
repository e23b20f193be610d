"""HF generation: batched (the pipeline's HFBackend way: many prompts x n samples per call) vs a
per-prompt `generate` loop (one prompt's n samples per call, as a naive script does), on the same
model, prompts and number of tokens, side by side in one run.

Run after `dvc repro` (reads models/sft and the eval prompts):

    python bench/generation.py --prompts 64 --tokens 32

Every sequence generates exactly --tokens tokens (end-of-turn suppressed until then), so both
ways produce the same number of tokens; prints tokens per second and the ratio. vLLM vs HF is
measured only where vLLM and a GPU are present.
"""

from __future__ import annotations

import argparse
import time

import torch

from rlhf.core import paths
from rlhf.models.checkpoints import load_policy, load_tokenizer
from rlhf.online.generation import render_prompts
from rlhf.prompts.splits import read_split


def run(model, tok, texts: list[str], n: int, tokens: int, batch: int) -> float:
    """Seconds to sample n x `tokens` tokens for every text, `batch` texts per call."""
    t = time.perf_counter()
    for i in range(0, len(texts), batch):
        enc = tok(texts[i : i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(i)
        model.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            num_return_sequences=n,
            pad_token_id=tok.pad_token_id,
        )
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", default=str(paths.SFT_MODEL))
    p.add_argument("--prompts", type=int, default=64, help="eval prompts used, count")
    p.add_argument("--n", type=int, default=8, help="samples per prompt")
    p.add_argument("--tokens", type=int, default=32, help="tokens per sample")
    p.add_argument(
        "--batch", default="32", help="prompts per call, batched way; several: 32,64,128 (arms)"
    )
    p.add_argument("--skip-loop", action="store_true", help="batched arms only")
    args = p.parse_args()
    tok = load_tokenizer(args.policy)
    tok.padding_side = "left"
    model = load_policy(args.policy).eval()
    msgs = read_split(paths.PROMPTS, "eval").column("messages").to_pylist()[: args.prompts]
    texts = render_prompts(tok, msgs)
    total = len(texts) * args.n * args.tokens
    with torch.inference_mode():
        run(model, tok, texts[:2], args.n, 4, 2)  # warm-up
        loop = None if args.skip_loop else run(model, tok, texts, args.n, args.tokens, 1)
        sizes = [int(b) for b in args.batch.split(",")]
        batched = {b: run(model, tok, texts, args.n, args.tokens, b) for b in sizes}
    print(f"{total} tokens each way ({len(texts)} prompts x {args.n} samples x {args.tokens})")
    if loop is not None:
        print(f"per-prompt loop : {loop:6.1f} s, {total / loop:8.0f} tok/s")
    for b, s in batched.items():
        print(f"batched ({b:>3})   : {s:6.1f} s, {total / s:8.0f} tok/s")
    first = batched[sizes[0]]
    for b in sizes[1:]:
        print(f"RATIO batch {b} / batch {sizes[0]}: {first / batched[b]:.2f}x")
    if loop is not None:
        best = min(batched.values())
        print(f"RATIO generation batched / per-prompt loop: {loop / best:.1f}x (target >= 5x)")
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("vLLM vs HF: not measured (vLLM not installed; it needs a GPU)")
    else:
        if not torch.cuda.is_available():
            print("vLLM vs HF: not measured (no GPU)")


if __name__ == "__main__":
    main()
