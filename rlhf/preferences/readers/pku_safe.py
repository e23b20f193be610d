"""PKU-Alignment/PKU-SafeRLHF: two responses with safety and helpfulness labels."""

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
    user_turn,
)


def adapt_pku_safe(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    id_field = f"{flt.label}_response_id"
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {
                "prompt": "text",
                "response_0": "text",
                "response_1": "text",
                id_field: "any",
                "is_response_0_safe": "any",
                "is_response_1_safe": "any",
            },
        ):
            yield d
            continue
        k = row[id_field]
        if k not in (0, 1):
            yield Drop(i, "invalid_label", id_field, f"{id_field}={k} is not 0 or 1", row)
            continue
        safe = (row["is_response_0_safe"], row["is_response_1_safe"])
        if flt.label == "safer" and not safe[k] and safe[1 - k]:
            yield Drop(
                i,
                "label_contradicts_flags",
                id_field,
                f"response_{k} is labelled safer but is_response_{k}_safe=False "
                f"and is_response_{1 - k}_safe=True",
                row,
            )
            continue
        prompt = [user_turn(row["prompt"])]
        yield Candidate(
            i,
            prompt + [assistant_turn(row[f"response_{k}"])],
            prompt + [assistant_turn(row[f"response_{1 - k}"])],
        )


FORMATS = (
    Format(
        "pku-saferlhf",
        adapt_pku_safe,
        "human_safety",
        "PKU-Alignment/PKU-SafeRLHF",
        SourceFilter(label="safer"),
        {"prompt": "text", "response_0": "text", "response_1": "text", "safer_response_id": "any"},
    ),
)
