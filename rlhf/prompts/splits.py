"""Dedupe the prompt pool and cut it into disjoint splits: eval, train_1 ... train_N, reserve.

Order comes from a keyed hash of each prompt's id, not from the pool's draw order, so a
prompt's split does not move when unrelated prompts are added to or removed from the pool.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rlhf.core.config import ConfigError, PromptsConfig
from rlhf.core.messages import prompt_id
from rlhf.core.schemas import PROMPTS, read_table


def train_split(i: int) -> str:
    return f"train_{i}"


def split_prompts(cfg: PromptsConfig, pool: pa.Table) -> tuple[pa.Table, dict[str, Any]]:
    rows = pool.sort_by("pool_row").to_pylist()
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        pid = prompt_id(r["messages"])
        if pid not in seen:  # first occurrence wins
            seen[pid] = {
                "prompt_id": pid,
                "messages": r["messages"],
                "category": r["category"],
                "source": r["source"],
                "follow_ups": r.get("follow_ups"),
            }
    # Benchmarks (eval_only sources) make the eval split whole; the rest is cut into slices.
    bench = {n for n, src in cfg.external.items() if src.eval_only}
    unique = [r for r in seen.values() if r["source"] not in bench]
    pinned = [{**r, "split": "eval"} for r in seen.values() if r["source"] in bench]
    rows = [r for r in rows if r["source"] not in bench]

    def key(r: dict[str, Any]) -> str:
        return hashlib.sha1(f"{cfg.seed}:{r['prompt_id']}".encode()).hexdigest()

    # Stratify: every split keeps the category mix of the pool as drawn. Dedupe alone would
    # skew it, since small template spaces (safety) repeat far more than large ones.
    drawn = Counter(r["category"] for r in rows)
    by_cat: dict[str, list[dict[str, Any]]] = {c: [] for c in sorted(drawn)}
    for r in sorted(unique, key=key):
        by_cat[r["category"]].append(r)
    sizes = [("eval", 0 if bench else cfg.eval_size)] + [
        (train_split(i + 1), cfg.slice_size) for i in range(cfg.n_slices)
    ]
    quotas = {name: _quotas(size, drawn) for name, size in sizes}
    for c, items in by_cat.items():
        need = sum(q[c] for q in quotas.values())
        if len(items) < need:
            raise ConfigError(
                f"prompts: the splits need {need} unique {c!r} prompts but the pool has {len(items)} "
                f"after dedupe ({len(rows)} drawn in all); raise world.prompt_pool_size or lower "
                "prompts.eval_size / prompts.slice_size / prompts.n_slices"
            )
        i = 0
        for name, _ in sizes:
            for r in items[i : i + quotas[name][c]]:
                r["split"] = name
            i += quotas[name][c]
        for r in items[i:]:
            r["split"] = "reserve"
    unique = sorted(unique + pinned, key=key)
    table = pa.Table.from_pylist(unique, schema=PROMPTS)
    report = {
        "pool_rows": len(rows) + sum(1 for r in pool.column("source").to_pylist() if r in bench),
        "unique_prompts": len(unique),
        "duplicates_removed": len(rows) - len(unique),
        "splits": dict(sorted(Counter(r["split"] for r in unique).items())),
        "by_split_and_category": {
            s: dict(sorted(Counter(r["category"] for r in unique if r["split"] == s).items()))
            for s in sorted({r["split"] for r in unique})
        },
    }
    return table, report


def _quotas(size: int, weights: Counter) -> dict[str, int]:
    """Split `size` over categories in proportion to `weights` (largest remainder)."""
    total = sum(weights.values())
    exact = {c: size * w / total for c, w in weights.items()}
    q = {c: int(v) for c, v in exact.items()}
    for c in sorted(exact, key=lambda c: (q[c] - exact[c], c))[: size - sum(q.values())]:
        q[c] += 1
    return q


def read_split(path, split: str) -> pa.Table:
    """The prompts of one split; an error naming the file if the split is empty or absent."""
    table = read_table("prompts", path)
    sel = table.filter(pc.equal(table.column("split"), split))
    if sel.num_rows == 0:
        raise ValueError(
            f"{path}: split {split!r} has no prompts (splits: {sorted(set(table.column('split').to_pylist()))})"
        )
    return sel
