"""Batched reward-model scoring, each prompt + response rendered with the RM's own template;
an ensemble scores the mean of its members minus k times their spread."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from rlhf.core import paths
from rlhf.core.config import ScoreConfig
from rlhf.core.schemas import SCORED, failed_sample
from rlhf.core.shards import Shard, length_order, map_shards
from rlhf.models.checkpoints import (
    load_reward_model,
    load_tokenizer,
    reward_model_members,
    with_bos,
)


def combine(per_member: np.ndarray, conservative_k: float) -> np.ndarray:
    """One score per response from a (members, responses) array: mean - k * std."""
    return per_member.mean(0) - conservative_k * per_member.std(0)


def round_robin(judge, prompts: list[list[dict]], groups: list[list[str]], desc: str) -> list:
    """Each group's responses ranked by a pairwise judge: every unordered pair of a group is
    compared (the judge asks both orders: n(n-1) calls for n responses); a response's score
    is its mean probability of beating each other response, in [0, 1]. Deterministic for a
    deterministic judge; the best and worst of n are then the highest and lowest scores."""
    ps, a, b, where = [], [], [], []
    for g, (p, rs) in enumerate(zip(prompts, groups, strict=True)):
        for i, j in itertools.combinations(range(len(rs)), 2):
            ps.append(p)
            a.append(rs[i])
            b.append(rs[j])
            where.append((g, i, j))
    p_a = judge.compare(ps, a, b, desc).p_a if ps else np.zeros(0)
    wins = [np.zeros(len(rs)) for rs in groups]
    for (g, i, j), p in zip(where, p_a, strict=True):
        wins[g][i] += p
        wins[g][j] += 1.0 - p
    return [w / max(1, len(w) - 1) for w in wins]


class RewardScorer:
    """Batched reward-model scores, rendering each prompt + response with the RM's own template."""

    def __init__(self, rm_dir: str | Path, batch_size: int = 64, device=None):
        dirs, self.conservative_k = reward_model_members(rm_dir)
        # Members share the start's tokenizer and template (rlhf.models.reward): one read for all.
        self.tok = load_tokenizer(dirs[0])
        self.tok.padding_side = "right"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.models = [
            load_reward_model(d, self.tok.pad_token_id).to(self.device).eval() for d in dirs
        ]
        self.batch_size = batch_size

    def render(self, prompt: list[dict], response: str) -> str:
        text = self.tok.apply_chat_template(
            prompt + [{"role": "assistant", "content": response}], tokenize=False
        )
        return with_bos(self.tok, text)

    def score(
        self, prompts: list[list[dict]], responses: list[str], desc: str = "score"
    ) -> np.ndarray:
        return self.combine(self.score_members(prompts, responses, desc))

    def combine(self, per_member: np.ndarray) -> np.ndarray:
        return combine(per_member, self.conservative_k)

    def batches(self, texts: list[str], batch_tokens: int = 0) -> list[list[int]]:
        """Row indices of each forward pass. batch_tokens = 0: `batch_size` rows in input order.
        Otherwise rows sorted by token length and packed while rows x longest <= batch_tokens:
        mixed-length batches spend most of their compute on padding (bench/scoring.py)."""
        n = len(texts)
        if not batch_tokens:
            return [
                list(range(i, min(i + self.batch_size, n))) for i in range(0, n, self.batch_size)
            ]
        lengths = [len(ids) for ids in self.tok(texts, add_special_tokens=False)["input_ids"]]
        out: list[list[int]] = []
        for i in sorted(range(n), key=lambda i: (lengths[i], i)):
            # Ascending lengths: row i is the longest of its batch so far.
            if out and (len(out[-1]) + 1) * lengths[i] <= batch_tokens:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    @torch.inference_mode()
    def score_members(
        self,
        prompts: list[list[dict]],
        responses: list[str],
        desc: str = "score",
        batch_tokens: int = 0,
    ) -> np.ndarray:
        """Each member's reward of each response, shape (members, responses), in input order."""
        texts = [self.render(p, r) for p, r in zip(prompts, responses, strict=True)]
        out = np.zeros((len(self.models), len(texts)), dtype=np.float32)
        for idx in tqdm(self.batches(texts, batch_tokens), desc=desc, unit="batch"):
            # render() wrote every special token (BOS included): add none, so none is doubled.
            enc = self.tok(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            out[:, idx] = np.stack(
                [m(**enc).logits[:, 0].float().cpu().numpy() for m in self.models]
            )
        return out


def score(
    cfg: ScoreConfig,
    rm_dir: str | Path,
    gens: pa.Table,
    name: str = "scored",
    workdir: str | Path | None = None,
    pm_dir: str | Path | None = None,
    annotator: Callable[[pa.Table], np.ndarray] | None = None,
) -> pa.Table:
    """The reward of every generation (and its length-penalised reward), in shards of
    `cfg.shard_rows` responses kept under `workdir` (default `.rlhf/shards/score`) until the
    caller has written its output and cleared them; finished shards of an interrupted run are
    reused, and the workers of a multi-process launch share the shards. Under
    score.ranker=preference_model the reward is the round-robin score of the preference model
    at `pm_dir` within each (seed, prompt) group of samples (shards of whole groups). Under
    score.ranker=annotator it is `annotator(gens)`, the world's annotator that the stage passes
    in (rlhf.world.annotator): nothing in the loop imports the world's judge itself."""
    if cfg.ranker == "annotator":
        if annotator is None:
            raise ValueError("score.ranker=annotator needs the world's annotator (the stage's)")
        return _with_rewards(cfg, gens, annotator(gens), rm_dir)
    if cfg.ranker == "preference_model":
        return _with_rewards(cfg, gens, _pm_rewards(cfg, pm_dir, gens, name, workdir), rm_dir)
    prompts = gens.column("prompt").to_pylist()
    responses = gens.column("response").to_pylist()
    order = list(range(len(responses)))
    if cfg.sort_by_length:
        # Similar lengths share a forward pass: less padding (bench/scoring.py).
        sizes = [
            sum(len(m["content"]) for m in p) + len(r)
            for p, r in zip(prompts, responses, strict=True)
        ]
        order = length_order(sizes)
        prompts, responses = [prompts[i] for i in order], [responses[i] for i in order]

    def work(scorer: RewardScorer, sh: Shard) -> pa.Table:
        per_member = scorer.score_members(
            prompts[sh.start : sh.stop],
            responses[sh.start : sh.stop],
            desc=f"score {sh.index}",
            batch_tokens=cfg.batch_tokens,
        )
        return pa.table({f"member_{i}": m for i, m in enumerate(per_member)})

    tables = map_shards(
        name, workdir or paths.shards("score"), len(responses), cfg.shard_rows,
        params=("score", asdict(cfg)),
        model_dir=rm_dir,
        code=[__name__],
        rows=lambda a, b: (prompts[a:b], responses[a:b]),
        load=lambda w: RewardScorer(rm_dir, cfg.batch_size, w.device),
        work=work,
    )  # fmt: skip
    dirs, k = reward_model_members(rm_dir)
    per_member = np.zeros((len(dirs), len(order)), dtype=np.float32)
    for i in range(len(dirs)):
        if tables:
            per_member[i, order] = np.concatenate(
                [t.column(f"member_{i}").to_numpy() for t in tables]
            )
    return _with_rewards(cfg, gens, combine(per_member, k), rm_dir)


def _failed(gens: pa.Table) -> list[bool]:
    """Per row, whether the engine failed to give the sample (server backend)."""
    if "finish_reason" not in gens.column_names:
        return [False] * len(gens)
    return [failed_sample(r) for r in gens.column("finish_reason").to_pylist()]


def _pm_rewards(cfg: ScoreConfig, pm_dir, gens: pa.Table, name: str, workdir) -> np.ndarray:
    """Round-robin scores of the preference model, per (seed, prompt) group, in row order."""
    from rlhf.models.preference import PreferenceModel

    if pm_dir is None:
        raise ValueError("score.ranker=preference_model needs the preference model (--pm)")
    keys = list(
        zip(gens.column("seed").to_pylist(), gens.column("prompt_id").to_pylist(), strict=True)
    )
    failed = _failed(gens)
    members: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        if not failed[i]:  # a sample the engine failed to give is no contestant (score NaN)
            members.setdefault(key, []).append(i)
    groups = list(members.values())
    prompts = gens.column("prompt").to_pylist()
    responses = gens.column("response").to_pylist()
    n = max(len(g) for g in groups) if groups else 1

    def work(pm, sh: Shard) -> pa.Table:
        chunk = groups[sh.start : sh.stop]
        scores = round_robin(
            pm, [prompts[g[0]] for g in chunk], [[responses[i] for i in g] for g in chunk],
            f"rank {sh.index}",
        )  # fmt: skip
        return pa.table({"score": np.concatenate(scores) if scores else np.zeros(0)})

    tables = map_shards(
        name, workdir or paths.shards("score"), len(groups), max(1, cfg.shard_rows // n),
        params=("score", asdict(cfg)),
        model_dir=pm_dir,
        code=[__name__],
        rows=lambda a, b: [(prompts[g[0]], [responses[i] for i in g]) for g in groups[a:b]],
        load=lambda w: PreferenceModel(pm_dir, cfg.batch_size, w.device),
        work=work,
    )  # fmt: skip
    out = np.full(len(keys), np.nan)
    if groups:
        out[np.concatenate(groups)] = np.concatenate([t.column("score").to_numpy() for t in tables])
    return out


def _with_rewards(cfg: ScoreConfig, gens: pa.Table, rewards: np.ndarray, rm_dir) -> pa.Table:
    """`gens` with reward, length and length-penalised reward columns."""
    responses = gens.column("response").to_pylist()
    if cfg.length_unit == "chars":
        lengths = np.array([len(r) for r in responses], dtype=np.int64)
    else:
        tok = load_tokenizer(reward_model_members(rm_dir)[0][0])
        lengths = np.array(
            [len(ids) for ids in tok(responses, add_special_tokens=False)["input_ids"]],
            dtype=np.int64,
        )
    penalized = rewards - cfg.length_penalty * lengths
    t = gens
    for name, values in (
        ("reward", rewards.astype(np.float64)),
        ("length", lengths),
        ("length_unit", [cfg.length_unit] * len(t)),
        ("length_penalty", [cfg.length_penalty] * len(t)),
        ("penalized_reward", penalized.astype(np.float64)),
    ):
        t = t.append_column(SCORED.field(name), pa.array(values, type=SCORED.field(name).type))
    return t
