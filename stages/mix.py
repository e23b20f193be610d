"""Stage `mix`: adapt and filter each source (embedded world sources, and real datasets named in
mix.external) into one standard-format preference mix, with a quarantine table, a filter report
and the Table-1 statistics."""

import sys

from _common import params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.datafiles import DataError, UsageError
from rlhf.core.io import write_json, write_text
from rlhf.core.schemas import read_table, write_table
from rlhf.preferences.external import check_formats, load_external
from rlhf.preferences.formats import FORMATS
from rlhf.preferences.mix import build_mix
from rlhf.preferences.table1 import table1_markdown, table1_stats


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--world", default=str(paths.WORLD_DIR))
    p.add_argument("--out", default=str(paths.MIX_DIR))
    args = p.parse_args()
    cfg = params_or_exit(args.params).mix
    sources = cfg.recipes[cfg.recipe]
    try:
        check_formats("mix", cfg.external, FORMATS)
        raw = {
            s: load_external(cfg.external[s])
            if s in cfg.external
            else read_table(f"raw/{s}", paths.raw_source(args.world, s)).to_pylist()
            for s in sources
        }
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except (DataError, UsageError, FileNotFoundError) as e:  # one line, not a traceback
        sys.exit(f"error: mix.external: {e}")
    prefs, quarantine, report = build_mix(cfg, raw)
    out_prefs = write_table("preferences", prefs, f"{args.out}/{paths.PREFERENCES.name}")
    write_table("quarantine", quarantine, f"{args.out}/{paths.QUARANTINE.name}")
    write_json(paths.MIX_FILTER_REPORT, report)
    stats = table1_stats(out_prefs)
    write_json(paths.MIX_TABLE1_JSON, {r["source"]: r for r in stats})
    write_text(paths.MIX_TABLE1_MD, table1_markdown(stats))
    for s in sources:
        r = report[s]
        print(
            f"{s}: {r['raw_rows']} raw -> {r['kept_pairs']} pairs, {r['quarantined']} quarantined {r['reasons']}"
        )
    print(f"total: {prefs.num_rows} pairs, {quarantine.num_rows} quarantined")


if __name__ == "__main__":
    main()
