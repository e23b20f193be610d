"""The preference mix: every source of the recipe (embedded or a real dataset in
`mix.external`) through its format's adapter (:data:`rlhf.preferences.formats.FORMATS`, one registry),
then one standard-format table, a quarantine table with a reason per dropped row, and a
filter report."""

from __future__ import annotations

import random
from typing import Any

import pyarrow as pa

from rlhf.core.config import MixConfig, SourceFilter
from rlhf.core.schemas import PREFERENCES, QUARANTINE
from rlhf.preferences.adapters import AdaptResult, Row, run_adapter
from rlhf.preferences.formats import EMBEDDED_FORMATS, FORMATS


def adapt(
    source: str, rows: list[Row], flt: SourceFilter, seed: int, fmt_name: str | None = None
) -> AdaptResult:
    """Run source `source`'s format adapter (an embedded source's own format unless
    `fmt_name` names another) and the common checks over its native rows."""
    fmt = FORMATS[fmt_name or EMBEDDED_FORMATS[source]]
    return run_adapter(
        fmt.adapter, fmt.annotator, source, rows, flt, random.Random(f"{seed}:mix/{source}")
    )


def build_mix(
    cfg: MixConfig, raw: dict[str, list[Row]]
) -> tuple[pa.Table, pa.Table, dict[str, Any]]:
    """(preferences, quarantine, filter report) for the recipe `cfg.recipe`."""
    pairs: list[Row] = []
    quarantine: list[Row] = []
    report: dict[str, Any] = {}
    for source in cfg.recipes[cfg.recipe]:
        ext = cfg.external.get(source)
        fmt = FORMATS[ext.format if ext else EMBEDDED_FORMATS[source]]
        # A source without its own filter gets its format's paper filter.
        flt = cfg.filters.get(source, fmt.default_filter)
        res = adapt(source, raw[source], flt, cfg.seed, fmt.name)
        pairs += res.pairs
        quarantine += res.quarantine
        report[source] = {
            "raw_rows": res.raw_rows,
            "kept_pairs": len(res.pairs),
            "quarantined": len(res.quarantine),
            "reasons": res.reasons(),
        }
    report["total"] = {
        "kept_pairs": len(pairs),
        "quarantined": len(quarantine),
        "recipe": cfg.recipe,
    }
    return (
        pa.Table.from_pylist(pairs, schema=PREFERENCES),
        pa.Table.from_pylist(quarantine, schema=QUARANTINE),
        report,
    )
