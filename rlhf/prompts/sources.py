"""Prompt sources for the online iterations, from public datasets' published schemas, into the
prompt-pool table (dedupe and splitting then happen in rlhf.prompts.splits, as for the world).

Each adapter maps a native row to a message list ending in a user turn (a system prompt kept
as a system message), or to a quarantine reason; rows are never dropped uncounted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from rlhf.core.datafiles import BadRow
from rlhf.core.messages import content_text, prompt_id
from rlhf.core.schemas import PROMPT_POOL

Row = dict[str, Any]
Result = list[dict[str, str]] | tuple[str, str]  # messages, or (reason, field)


def _text(row: Row, field: str) -> Result:
    """The field as one user turn, byte for byte: whitespace only decides emptiness (a code
    prompt keeps its first-line indentation)."""
    v = row.get(field)
    if v is None:
        return ("missing_field", field)
    if not isinstance(v, str):
        return ("wrong_type", field)
    if not v.strip():
        return ("empty_turn", field)
    return [{"role": "user", "content": v}]


def _with_system(row: Row, system_field: str, field: str) -> Result:
    msgs = _text(row, field)
    sys_text = row.get(system_field)
    if isinstance(msgs, list) and isinstance(sys_text, str) and sys_text.strip():
        return [{"role": "system", "content": sys_text}, *msgs]
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


def _alpaca(row: Row) -> Result:
    """instruction + input joined by a newline (LLaMA-Factory's rule), system and history
    ([[query, answer], ...]) as earlier turns."""
    from rlhf.preferences.adapters import alpaca_context

    ctx = alpaca_context(row, 0)
    if not isinstance(ctx, list):
        return (ctx.reason, ctx.field)
    if not ctx[-1]["content"].strip():
        return ("empty_turn", "instruction")
    return ctx


def _turn_text(t: Any) -> str | None:
    """A question turn: a string (MT-Bench) or {content: ...} (Arena-Hard v0.1)."""
    if isinstance(t, dict):
        t = content_text(t.get("content"))
    return t if isinstance(t, str) else None


def _questions(row: Row) -> Result | tuple[list, list[str]]:
    """MT-Bench / Arena-Hard question files: `turns` (strings or {content}) or `prompt`; the
    first turn is the prompt, later turns are kept as scripted follow-ups."""
    if row.get("turns") is None and isinstance(row.get("prompt"), str):
        return _text(row, "prompt")
    turns = row.get("turns")
    if turns is None:
        return ("missing_field", "turns")
    if not isinstance(turns, list) or not turns:
        return ("wrong_type" if not isinstance(turns, list) else "empty_turn", "turns")
    texts = [_turn_text(t) for t in turns]
    for j, t in enumerate(texts):
        if t is None:
            return ("wrong_type", f"turns[{j}]")
        if not t.strip():
            return ("empty_turn", f"turns[{j}]")
    return [{"role": "user", "content": texts[0]}], texts[1:]


def _category(row: Row, default: str) -> str:
    """The row's own `category` (and `subcategory`) when it has one, else the source name."""
    c = row.get("category")
    if not isinstance(c, str) or not c.strip():
        return default
    sub = row.get("subcategory")
    return f"{c}/{sub}" if isinstance(sub, str) and sub.strip() else c


PROMPT_FORMATS: dict[str, tuple[Callable[[Row], Result], str]] = {
    "ultrafeedback": (lambda r: _text(r, "instruction"), "openbmb/UltraFeedback"),
    "helpsteer": (lambda r: _text(r, "prompt"), "nvidia/HelpSteer"),
    "openorca": (lambda r: _with_system(r, "system_prompt", "question"), "Open-Orca/OpenOrca"),
    "ultrainteract": (lambda r: _text(r, "instruction"), "openbmb/UltraInteract_sft"),
    "capybara": (lambda r: _first_turn(r, "conversation", "input"), "LDJnr/Capybara"),
    "dibt": (lambda r: _text(r, "prompt"), "DIBT/10k_prompts_ranked"),
    "alpaca": (_alpaca, "tatsu-lab/alpaca, LLaMA-Factory Alpaca: instruction + input"),
    "questions": (_questions, "MT-Bench / Arena-Hard question files: turns (or prompt), category"),
    "plain": (_plain, "one prompt per row: prompt / instruction / text / question"),
}
"""Prompt format -> (row -> messages or (reason, field), the dataset it mirrors)."""

CATEGORY_FORMATS = {"questions"}
"""Formats whose rows carry their own category (kept; the source name otherwise)."""


def convert_prompts(fmt: str, rows: list[Row], source: str | None = None):
    """(prompt-pool table, quarantine rows, report) for native rows of prompt format `fmt`.
    The report counts unique prompts after dedupe, as the prompts stage will see them."""
    if fmt not in PROMPT_FORMATS:
        raise ValueError(f"unknown prompt format {fmt!r}; known: {', '.join(PROMPT_FORMATS)}")
    fn, _ = PROMPT_FORMATS[fmt]
    name = source or fmt
    pool, quarantine = [], []
    for i, row in enumerate(rows):
        follow_ups = None
        if isinstance(row, BadRow):
            res = ("invalid_json", "", row.error)
        elif not isinstance(row, dict):
            res = ("malformed", "", "row is not an object")
        else:
            try:
                res = fn(row)
            except Exception as e:  # noqa: BLE001 - an unforeseen shape is this row's defect
                res = ("malformed", "", f"{type(e).__name__}: {e}")
            if isinstance(res, tuple) and isinstance(res[0], list):
                res, follow_ups = res
        if isinstance(res, tuple):
            quarantine.append(
                {
                    "source": name,
                    "source_row": i,
                    "reason": res[0],
                    "field": res[1],
                    "detail": res[2] if len(res) > 2 else f"{res[1]}: {res[0]}",
                    "raw_json": row.text if isinstance(row, BadRow) else _json(row),
                }
            )
            continue
        category = _category(row, name) if fmt in CATEGORY_FORMATS else name
        pool.append(
            {
                "pool_row": i,
                "messages": res,
                "category": category,
                "source": name,
                "follow_ups": follow_ups or None,
            }
        )
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
