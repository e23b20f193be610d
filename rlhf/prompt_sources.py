"""Prompt sources for the online iterations, from public datasets' published schemas, into the
prompt-pool table (dedupe and splitting then happen in rlhf.prompt_splits, as for the world).

Each adapter maps a native row to a message list ending in a user turn (a system prompt kept
as a system message), or to a quarantine reason; rows are never dropped uncounted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from rlhf.messages import prompt_id
from rlhf.schemas import PROMPT_POOL

Row = dict[str, Any]
Result = list[dict[str, str]] | tuple[str, str]  # messages, or (reason, field)


def _text(row: Row, field: str) -> Result:
    v = row.get(field)
    if v is None:
        return ("missing_field", field)
    if not isinstance(v, str) or not v.strip():
        return ("empty_turn", field)
    return [{"role": "user", "content": v.strip()}]


def _with_system(row: Row, system_field: str, field: str) -> Result:
    msgs = _text(row, field)
    sys_text = row.get(system_field)
    if isinstance(msgs, list) and isinstance(sys_text, str) and sys_text.strip():
        return [{"role": "system", "content": sys_text.strip()}, *msgs]
    return msgs


def _first_turn(row: Row, field: str, key: str) -> Result:
    turns = row.get(field)
    if not turns:
        return ("missing_field", field)
    return _text(turns[0], key) if isinstance(turns[0], dict) else ("malformed", field)


def _plain(row: Row) -> Result:
    for f in ("prompt", "instruction", "text", "question"):
        if f in row:
            return _text(row, f)
    return ("missing_field", "prompt")


PROMPT_FORMATS: dict[str, tuple[Callable[[Row], Result], str]] = {
    "ultrafeedback": (lambda r: _text(r, "instruction"), "openbmb/UltraFeedback"),
    "helpsteer": (lambda r: _text(r, "prompt"), "nvidia/HelpSteer"),
    "openorca": (lambda r: _with_system(r, "system_prompt", "question"), "Open-Orca/OpenOrca"),
    "ultrainteract": (lambda r: _text(r, "instruction"), "openbmb/UltraInteract_sft"),
    "capybara": (lambda r: _first_turn(r, "conversation", "input"), "LDJnr/Capybara"),
    "dibt": (lambda r: _text(r, "prompt"), "DIBT/10k_prompts_ranked"),
    "plain": (_plain, "one prompt per row: prompt / instruction / text / question"),
}


def convert_prompts(fmt: str, rows: list[Row], source: str | None = None):
    """(prompt-pool table, quarantine rows, report) for native rows of prompt format `fmt`.
    The report counts unique prompts after dedupe, as the prompts stage will see them."""
    if fmt not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {fmt!r}; known: {', '.join(PROMPT_FORMATS)}")
    fn, _ = PROMPT_FORMATS[fmt]
    name = source or fmt
    pool, quarantine = [], []
    for i, row in enumerate(rows):
        res = fn(row)
        if isinstance(res, tuple):
            quarantine.append(
                {
                    "source": name,
                    "source_row": i,
                    "reason": res[0],
                    "field": res[1],
                    "detail": f"{res[1]}: {res[0]}",
                    "raw_json": _json(row),
                }
            )
            continue
        pool.append({"pool_row": i, "messages": res, "category": name, "source": name})
    unique = len({prompt_id(p["messages"]) for p in pool})
    report = {
        "rows": len(rows),
        "prompts": len(pool),
        "unique_prompts": unique,
        "duplicates": len(pool) - unique,
        "quarantined": dict(sorted(Counter(q["reason"] for q in quarantine).items())),
    }
    return pa.Table.from_pylist(pool, schema=PROMPT_POOL), quarantine, report


def _json(row: Row) -> str:
    import json

    return json.dumps(row, sort_keys=True, default=str, ensure_ascii=False)


def build_pool(world: pa.Table | None, external: dict, load) -> tuple[pa.Table, list[Row], dict]:
    """The prompt pool: the world's (if given) followed by each external source's prompts,
    numbered after everything before them so the dedupe keeps the first occurrence. Returns
    (pool, quarantine rows, per-source report). `load` reads an ExternalSource's rows."""
    pools = [world.cast(PROMPT_POOL)] if world is not None else []
    quarantine: list[Row] = []
    reports: dict[str, Any] = {}
    offset = 0
    if world is not None and world.num_rows:
        offset = max(world.column("pool_row").to_pylist()) + 1
    for name, src in external.items():
        pool, q, report = convert_prompts(src.format, load(src), source=name)
        rows = pool.column("pool_row").to_pylist()
        pool = pool.set_column(
            0, PROMPT_POOL.field("pool_row"), pa.array([offset + r for r in rows], pa.int64())
        )
        offset += report["rows"]  # so pool_row - offset is the row in the source
        pools.append(pool)
        quarantine += q
        reports[name] = report
    return pa.concat_tables(pools), quarantine, reports
