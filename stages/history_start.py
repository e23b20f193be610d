"""Stage `history_start`: the empty pair history that the first iteration accumulates onto."""

from _common import parser

from rlhf.core import paths
from rlhf.core.schemas import empty, write_table


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--out", default=str(paths.HISTORY_START))
    write_table("pairs", empty("pairs"), p.parse_args().out)


if __name__ == "__main__":
    main()
