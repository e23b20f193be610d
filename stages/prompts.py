"""Stage `prompts`: pool the world's prompts and the real prompt sources of prompts.external,
dedupe, and cut disjoint eval / per-iteration splits. Unusable external rows go to a quarantine
table with their reason."""

import sys

import pyarrow as pa
from _common import params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.datafiles import DataError, UsageError
from rlhf.core.io import write_json
from rlhf.core.schemas import QUARANTINE, read_table, write_table
from rlhf.preferences.external import check_formats, load_external
from rlhf.prompts.sources import PROMPT_FORMATS, build_pool
from rlhf.prompts.splits import split_prompts


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--pool", default=str(paths.PROMPT_POOL))
    p.add_argument("--out", default=str(paths.PROMPTS))
    args = p.parse_args()
    cfg = params_or_exit(args.params).prompts
    try:
        check_formats("prompts", cfg.external, PROMPT_FORMATS)
    except ConfigError as e:
        sys.exit(f"error: {e}")
    world = read_table("prompt_pool", args.pool) if cfg.world else None
    try:
        pool, quarantine, external = build_pool(world, cfg.external, load_external)
    except (DataError, UsageError, FileNotFoundError) as e:  # one line, not a traceback
        sys.exit(f"error: prompts.external: {e}")
    for name, r in external.items():
        print(f"{name}: {r}")
    table, report = split_prompts(cfg, pool)
    write_table("prompts", table, args.out)
    write_table(
        "quarantine", pa.Table.from_pylist(quarantine, schema=QUARANTINE), paths.PROMPTS_QUARANTINE
    )
    write_json(paths.PROMPT_SPLITS_JSON, {**report, "external": external} if external else report)
    print(report)


if __name__ == "__main__":
    main()
