"""Training throughput of every trainer the pipeline uses, side by side in one run: uniformly
random batches as they are, the same batches cut into length-sorted micro-batches
(`<section>.train.micro_batches`), length-grouped batches (`group_by_length`), and for the
reward model batches of whole prompts' pairs (`reward_model.prompt_chunk`, each distinct answer
computed once) and shared-prefix rows (`reward_model.shared_prefix`, each pair's prompt computed
once: `prefixN`, the pipeline's default, where `random` and `microN` are TRL's two rows a pair);
the same examples (whole prompts' pairs), the same start, `--epochs` each (1), with
the pipeline's own batch sizes and max lengths.

Run after `dvc repro` (reads models/base, models/sft, the mix and the demonstrations):

    python bench/trainers.py --examples 2000 [--arms random micro4 grouped] [--only reward_model]

Prints, per trainer and arm, seconds, real (non-padding) tokens of the examples per second
(work done: an answer computed once for two pairs counts twice) and the final
training loss (micro-batches should match random's up to float rounding: the same batches),
then `RATIO` lines (random seconds / the arm's seconds).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import time

import datasets
import pyarrow as pa

from rlhf.core import paths
from rlhf.core.config import load_params
from rlhf.core.messages import to_trl_preference
from rlhf.core.schemas import read_table
from rlhf.models import train
from rlhf.models.checkpoints import load_policy, load_reward_model, load_tokenizer, tiny_llama
from rlhf.models.policy import pairs_to_trl, world_conversations
from rlhf.models.preference import training_conversations


def _tokens(tok, texts: list[str], max_length: int) -> int:
    return sum(min(len(i), max_length) for i in tok(texts, add_special_tokens=False)["input_ids"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=2000, help="examples per trainer, count")
    p.add_argument("--only", nargs="*", default=None, help="trainers to run (default: all)")
    p.add_argument(
        "--arms",
        nargs="*",
        default=["random", "micro2", "micro4", "micro8", "grouped"],
        help="random, microN (N length-sorted micro-batches per batch), grouped, promptKxN (the "
        "RM's batches of whole prompts, K pairs of a prompt at most, N micro-batches), prefixN (the "
        "RM's shared-prefix rows, N micro-batches), refonceN (DPO "
        "with the reference's log-probs computed once, N micro-batches); in order",
    )
    p.add_argument("--epochs", type=float, default=1.0, help="epochs per arm")
    args = p.parse_args()
    params = load_params()
    n = args.examples
    prefs = read_table("preferences", paths.PREFERENCES)
    demos = read_table("demonstrations", paths.DEMONSTRATIONS)
    base_tok, sft_tok = load_tokenizer(paths.BASE_MODEL), load_tokenizer(paths.SFT_MODEL)
    b = params.base

    # Whole prompts' pairs (prompts in a seeded order until n pairs), as the mix has them:
    # a uniform sample of pairs would split the prompts that the prompt-chunk arms group.
    by_prompt: dict[str, list[int]] = {}
    for i, c in enumerate(prefs.column("chosen").to_pylist()):
        by_prompt.setdefault(repr(c[:-1]), []).append(i)
    groups = list(by_prompt.values())
    random.Random(0).shuffle(groups)
    keep = [i for g in groups for i in g][:n]
    pairs = datasets.Dataset(prefs.select(["chosen", "rejected"]).take(keep))
    pairs = pairs.map(to_trl_preference, remove_columns=pairs.column_names)

    def pair_texts(ds):
        return [
            sft_tok.apply_chat_template(r["prompt"] + r[k], tokenize=False)
            for r in ds
            for k in ("chosen", "rejected")
        ]

    convs = world_conversations(prefs, n, b.seed)
    texts = [base_tok.apply_chat_template(c, tokenize=False) for c in convs]
    sft_convs = random.Random(0).sample(demos.column("messages").to_pylist(), min(n, len(demos)))
    pm_cfg = params.preference_model
    pm_convs, _ = training_conversations(
        prefs, dataclasses.replace(pm_cfg, max_pairs=n // 2), sft_tok
    )
    rows = prefs.slice(0, min(n, prefs.num_rows)).select(["chosen", "rejected"]).to_pylist()
    offline = pairs_to_trl(
        pa.table(
            {
                "prompt": [r["chosen"][:-1] for r in rows],
                "chosen": [r["chosen"][-1]["content"] for r in rows],
                "rejected": [r["rejected"][-1]["content"] for r in rows],
            }
        )
    )

    def chat(tok, cs):
        return [tok.apply_chat_template(c, tokenize=False) for c in cs]

    # (name, train config, real tokens, run(cfg) -> summary)
    jobs = {
        "pretrain (base)": (
            b.train,
            _tokens(base_tok, texts, b.train.max_length),
            lambda c: train.pretrain(
                tiny_llama(base_tok, b.hidden_size, b.layers, b.heads, b.max_position, b.seed),
                base_tok, texts, c, b.seed,
            )[1],
        ),
        "sft": (
            params.sft.train,
            _tokens(base_tok, chat(base_tok, sft_convs), params.sft.train.max_length),
            lambda c: train.sft(load_policy(paths.BASE_MODEL), base_tok, sft_convs, c, 0)[1],
        ),
        "reward_model": (
            params.reward_model.train,
            _tokens(sft_tok, pair_texts(pairs), params.reward_model.train.max_length),
            lambda c, **extra: train.reward_model(
                load_reward_model(paths.SFT_MODEL, sft_tok.pad_token_id), sft_tok, pairs, c, 0,
                **extra,
            )[1],
        ),
        "preference_model": (
            pm_cfg.train,
            _tokens(sft_tok, chat(sft_tok, pm_convs), pm_cfg.train.max_length),
            lambda c: train.sft(load_policy(paths.SFT_MODEL), sft_tok, pm_convs, c, 0)[1],
        ),
        "dpo": (
            params.dpo.train,
            _tokens(sft_tok, pair_texts(offline), params.dpo.train.max_length),
            lambda c, **extra: train.dpo(
                load_policy(paths.SFT_MODEL), load_policy(paths.SFT_MODEL), sft_tok, offline, c,
                params.dpo.beta, 0, **extra,
            )[1],
        ),
    }  # fmt: skip
    for name, (tcfg, tokens, run) in jobs.items():
        if args.only and name.split()[0] not in args.only:
            continue
        seconds = {}
        for arm in args.arms:
            fields, extra = _arm(arm)
            if extra and name != _ARM_OWNER[next(iter(extra))]:
                continue  # an arm of one trainer's own option
            cfg = dataclasses.replace(tcfg, epochs=args.epochs, **fields)
            t = time.perf_counter()
            summary = run(cfg, **extra)
            seconds[arm] = time.perf_counter() - t
            print(
                f"{name:>17} {arm:>8}: {seconds[arm]:7.1f} s, {summary['steps']:4d} steps, "
                f"{tokens / seconds[arm]:8.0f} tok/s, train loss {summary['train_loss']:.4f}",
                flush=True,
            )
        for arm in args.arms:
            if arm != "random" and "random" in seconds and arm in seconds:
                print(f"RATIO {name} {arm} speed-up: {seconds['random'] / seconds[arm]:.2f}x")


_ARM_OWNER = {
    "prompt_chunk": "reward_model",
    "shared_prefix": "reward_model",
    "precompute_ref": "dpo",
}


def _arm(arm: str) -> tuple[dict, dict]:
    """The TrainConfig fields an arm sets (besides epochs), and the trainer options it sets."""
    if arm == "random":
        return dict(group_by_length=False, micro_batches=1), {}
    if arm == "grouped":
        return dict(group_by_length=True, micro_batches=1), {}
    if arm.startswith("micro") and arm[5:].isdigit():
        return dict(group_by_length=False, micro_batches=int(arm[5:])), {}
    m = re.fullmatch(r"prompt(\d+)x(\d+)", arm)
    if m:
        return dict(group_by_length=False, micro_batches=int(m[2])), {"prompt_chunk": int(m[1])}
    m = re.fullmatch(r"prefix(\d+)", arm)
    if m:
        return dict(group_by_length=False, micro_batches=int(m[1])), {"shared_prefix": True}
    m = re.fullmatch(r"refonce(\d+)", arm)
    if m:
        return dict(group_by_length=False, micro_batches=int(m[1])), {"precompute_ref": True}
    raise SystemExit(
        f"unknown arm {arm!r}: random, grouped, microN, promptKxN, prefixN or refonceN"
    )


if __name__ == "__main__":
    main()
