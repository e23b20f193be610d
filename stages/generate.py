"""Stage `generate@<iteration>`: n responses per prompt of the iteration's split from each seed's
replicate of its input policy."""

import sys
from collections import Counter

import pyarrow as pa
from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.config import ConfigError
from rlhf.core.io import write_json
from rlhf.core.schemas import write_table
from rlhf.core.shards import clear
from rlhf.prompts.splits import read_split


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.online.generation import generate

    it = params.iterations[args.iteration]
    prompts = read_split(args.prompts, it.prompt_split)
    work = paths.shards(f"generate@{args.iteration}")
    with Timer(f"generate@{args.iteration}") as t:
        table = pa.concat_tables(
            generate(
                params.generate, args.iteration, paths.replicate(args.policy, s), prompts, s, work
            )
            for s in params.seeds
        )
    write_table("generations", table, args.out)
    clear(work)
    reasons = Counter(table.column("finish_reason").to_pylist())
    stop = reasons["stop"]
    failed = {k: n for k, n in sorted(reasons.items()) if k.startswith("error")}
    write_json(
        paths.iteration_dir(args.iteration) / "generate.json",
        {"responses": table.num_rows, "stopped": stop, "seeds": len(params.seeds)}
        | ({"failed": failed} if failed else {}),
    )
    if failed:
        print(
            f"{sum(failed.values())} samples failed at the engine (pairs leave them out): {failed}"
        )
    print(f"{table.num_rows} responses, {stop} ended at the stop token, {t.seconds}s")


if __name__ == "__main__":
    try:
        main()
    except ConfigError as e:  # found only when used: an engine that fails (backend server)
        sys.exit(f"error: {e}")
