"""Materialise the embedded world as Parquet: raw sources, prompt pool, demonstrations."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from rlhf.core import paths
from rlhf.core.config import SOURCE_NAMES, WorldConfig
from rlhf.core.messages import prompt_id
from rlhf.core.schemas import PROMPT_POOL, RAW_SOURCES, write_table
from rlhf.world.sources import demonstrations, prompt_pool, simulate_source


def build_world(cfg: WorldConfig, out_dir: str | Path) -> dict[str, int]:
    """Write every world table under `out_dir`; return row counts by table."""
    out_dir = Path(out_dir)
    counts: dict[str, int] = {}
    for name in tqdm(SOURCE_NAMES, desc="world: sources", unit="source"):
        rows = simulate_source(name, cfg)
        table = pa.Table.from_pylist(rows, schema=RAW_SOURCES[name])
        write_table(f"raw/{name}", table, paths.raw_source(out_dir, name))
        counts[f"raw/{name}"] = len(rows)

    pool = prompt_pool(cfg)
    write_table(
        "prompt_pool",
        pa.Table.from_pylist(pool, schema=PROMPT_POOL),
        out_dir / paths.PROMPT_POOL.name,
    )
    counts["prompt_pool"] = len(pool)

    demos = demonstrations(cfg)
    for d in demos:
        d["prompt_id"] = prompt_id(d["messages"][:-1])
    write_table("demonstrations", pa.Table.from_pylist(demos), out_dir / paths.DEMONSTRATIONS.name)
    counts["demonstrations"] = len(demos)
    return counts
