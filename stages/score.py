"""Stage `score@<iteration>`: reward of every response from the RM (or the preference model's
round robin under score.ranker=preference_model, the world's annotator under
score.ranker=annotator), with the length penalty."""

from _common import Timer, params_or_exit, parser

from rlhf.core import paths
from rlhf.core.schemas import read_table, write_table
from rlhf.core.shards import clear


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--rm", default=str(paths.REWARD_MODEL))
    p.add_argument(
        "--pm",
        default=str(paths.PREFERENCE_MODEL),
        help="ranker under score.ranker=preference_model",
    )
    p.add_argument("--generations", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = params_or_exit(args.params)
    # After the params: the process is pinned before torch loads (_common).
    from rlhf.online.scoring import score
    from rlhf.world.annotator import ranker

    work = paths.shards(f"score@{args.iteration}")
    with Timer(f"score@{args.iteration}") as t:
        gens = read_table("generations", args.generations)
        table = score(
            params.score, args.rm, gens, workdir=work, pm_dir=args.pm, annotator=ranker(params)
        )
    write_table("scored", table, args.out)
    clear(work)
    print(f"{table.num_rows} responses scored in {t.seconds}s")


if __name__ == "__main__":
    main()
