"""openbmb/UltraInteract_pair: multi-turn trajectories with a correct and a wrong answer."""

from __future__ import annotations

import random
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    assistant_turn,
    check_fields,
)

_UI_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant"}


def adapt_ultrainteract(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        if d := check_fields(row, i, {"trajectory": "list", "chosen": "text", "rejected": "text"}):
            yield d
            continue
        if not row["trajectory"]:
            yield Drop(i, "empty_turn", "trajectory", "empty trajectory", row)
            continue
        bad = next(
            (
                Drop(i, d.reason, f"trajectory[{j}].{d.field}", d.detail, row)
                for j, t in enumerate(row["trajectory"])
                if (d := check_fields(t, i, {"from": "text"}, {"value": "text"}))
            ),
            None,
        )
        if bad:
            yield bad
            continue
        try:
            context = [
                {"role": _UI_ROLES[t["from"]], "content": t.get("value") or ""}
                for t in row["trajectory"]
            ]
        except KeyError as e:
            yield Drop(i, "bad_roles", "trajectory", f"unknown speaker {e}", row)
            continue
        yield Candidate(
            i,
            context + [assistant_turn(row["chosen"])],
            context + [assistant_turn(row["rejected"])],
        )


FORMATS = (
    Format(
        "ultrainteract",
        adapt_ultrainteract,
        "answer_correctness",
        "openbmb/UltraInteract_pair",
        SourceFilter(),
        {"trajectory": "list", "chosen": "text", "rejected": "text"},
    ),
)
