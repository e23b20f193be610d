"""Stage `world`: materialise the embedded synthetic world (raw sources, prompt pool, demos)."""

from _common import params_or_exit, parser

from rlhf.core import paths
from rlhf.world.build import build_world


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default=str(paths.WORLD_DIR))
    args = p.parse_args()
    params = params_or_exit(args.params)
    counts = build_world(params.world, args.out)
    for name, n in counts.items():
        print(f"{name}: {n} rows")


if __name__ == "__main__":
    main()
