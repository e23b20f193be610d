"""Stage `generate@<iteration>`: n responses per prompt of the iteration's split from its policy."""

from _common import Timer, params_or_exit, parser

from rlhf import paths
from rlhf.generation import generate
from rlhf.io import write_json
from rlhf.schemas import read_table, write_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--iteration", required=True)
    p.add_argument("--policy", required=True)
    p.add_argument("--prompts", default=str(paths.PROMPTS))
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = params_or_exit(args.params)
    it = params.iterations[args.iteration]
    prompts = read_table("prompts", args.prompts)
    prompts = prompts.filter(
        prompts.column("split").to_numpy(zero_copy_only=False) == it.prompt_split
    )
    if prompts.num_rows == 0:
        raise SystemExit(f"error: {args.prompts}: split {it.prompt_split!r} has no prompts")
    with Timer() as t:
        table = generate(params.generate, args.iteration, args.policy, prompts)
    write_table("generations", table, args.out)
    stop = sum(r == "stop" for r in table.column("finish_reason").to_pylist())
    write_json(
        paths.iteration_dir(args.iteration) / "generate.json",
        {"responses": table.num_rows, "stopped": stop, "wall_s": t.seconds},
    )
    print(f"{table.num_rows} responses, {stop} ended at the stop token, {t.seconds}s")


if __name__ == "__main__":
    main()
