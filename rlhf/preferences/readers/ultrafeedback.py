"""The UltraFeedback family: openbmb/UltraFeedback (rated completions), HuggingFaceH4/
ultrafeedback_binarized (chosen / rejected conversations) and coseus/CodeUltraFeedback."""

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
from rlhf.preferences.readers import common


def adapt_ultrafeedback(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    for i, row in enumerate(rows):
        # openbmb/UltraFeedback names the prompt `instruction`; binarised copies use `prompt`.
        key = "prompt" if isinstance(row, dict) and "prompt" in row else "instruction"
        if d := check_fields(row, i, {key: "text", "completions": "list"}):
            yield d
            continue
        comps = row["completions"]
        bad = None
        for j, c in enumerate(comps):
            if d := check_fields(c, i, {"response": "text", "overall_score": "number"}):
                where = f"completions[{j}]" + (f".{d.field}" if d.field else "")
                bad = Drop(i, d.reason, where, d.detail, row)
                break
        bad = bad or next(
            (
                Drop(i, "empty_turn", f"completions[{j}].response", "empty completion", row)
                for j, c in enumerate(comps)
                if not c["response"].strip()
            ),
            None,
        )
        if bad:
            yield bad
            continue
        if len(comps) < 2:
            yield Drop(i, "missing_field", "completions", "fewer than 2 completions", row)
            continue
        best = max(range(len(comps)), key=lambda j: (comps[j]["overall_score"], -j))
        top = comps[best]["overall_score"]
        lower = [
            j for j, c in enumerate(comps) if c["overall_score"] <= top - max(flt.min_margin, 1e-9)
        ]
        if not lower:
            yield Drop(
                i,
                "below_min_margin",
                "completions.overall_score",
                f"no completion scored <= {top} - {flt.min_margin}",
                row,
            )
            continue
        # The paper's recipe: best-rated vs a random lower-rated completion.
        j = rng.choice(lower)
        prompt = [user_turn(row[key])]
        yield Candidate(
            i,
            prompt + [assistant_turn(comps[best]["response"])],
            prompt + [assistant_turn(comps[j]["response"])],
            float(top),
            float(comps[j]["overall_score"]),
        )


def adapt_ultrafeedback_binarized(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """prompt (string), chosen / rejected (full conversations: the user turn, then the
    answer), score_chosen / score_rejected (kept, and checked against the label)."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {"prompt": "text", "chosen": "list", "rejected": "list"},
            {"score_chosen": "number", "score_rejected": "number"},
        ):
            yield d
            continue
        msgs = common.read_pair(i, row)
        if isinstance(msgs, Drop):
            yield msgs
            continue
        chosen, rejected = msgs
        # Some copies hold only the answer in chosen / rejected; the prompt is then prepended.
        p = [user_turn(row["prompt"])]
        chosen = chosen if chosen[:1] and chosen[0]["role"] != "assistant" else p + chosen
        rejected = rejected if rejected[:1] and rejected[0]["role"] != "assistant" else p + rejected
        cs, rs = row.get("score_chosen"), row.get("score_rejected")
        if cs is None or rs is None:
            yield Candidate(i, chosen, rejected)
            continue
        if cs == rs:
            yield Drop(
                i, "tied_rating", "score_chosen", f"score_chosen = score_rejected = {cs}", row
            )
            continue
        checked = common.check_ratings(i, row, cs, rs, ("score_chosen", "score_rejected"), flt)
        yield checked if isinstance(checked, Drop) else Candidate(i, chosen, rejected, *checked)


def adapt_codeultrafeedback(
    rows: list[Row], flt: SourceFilter, rng: random.Random
) -> Iterator[Candidate | Drop]:
    """instruction + responses[{model, response}] rated by annotations[{model, rating,
    rationale}] (ratings are strings "1".."5"): best-rated vs a random completion rated at
    least `min_margin` lower, as for UltraFeedback."""
    for i, row in enumerate(rows):
        if d := check_fields(
            row, i, {"instruction": "text", "responses": "list", "annotations": "list"}
        ):
            yield d
            continue
        texts = {r.get("model"): r.get("response") for r in row["responses"] or []}
        rated = []
        bad = None
        for j, a in enumerate(row["annotations"] or []):
            s = common.score(a.get("rating"))
            if s is None:
                bad = Drop(
                    i,
                    "invalid_score",
                    f"annotations[{j}].rating",
                    f"rating {a.get('rating')!r} is not a number",
                    row,
                )
                break
            text = texts.get(a.get("model"))
            if text is None or not str(text).strip():
                bad = Drop(
                    i,
                    "empty_turn",
                    f"responses[{a.get('model')}]",
                    "rated model has no response",
                    row,
                )
                break
            rated.append((s, j, text))
        if bad:
            yield bad
            continue
        if len(rated) < 2:
            yield Drop(i, "missing_field", "annotations", "fewer than 2 rated responses", row)
            continue
        top = max(rated, key=lambda t: (t[0], -t[1]))
        lower = [t for t in rated if t[0] <= top[0] - max(flt.min_margin, 1e-9)]
        if not lower:
            yield Drop(
                i,
                "below_min_margin",
                "annotations.rating",
                f"no response rated <= {top[0]} - {flt.min_margin}",
                row,
            )
            continue
        low = rng.choice(lower)
        prompt = [user_turn(row["instruction"])]
        yield Candidate(
            i, prompt + [assistant_turn(top[2])], prompt + [assistant_turn(low[2])], top[0], low[0]
        )


FORMATS = (
    Format(
        "ultrafeedback",
        adapt_ultrafeedback,
        "ai_rating_1_10",
        "openbmb/UltraFeedback",
        SourceFilter(min_margin=1.0),
        {"instruction": "text", "completions": "list"},
    ),
    Format(
        "ultrafeedback-binarized",
        adapt_ultrafeedback_binarized,
        "ai_rating_1_10",
        "HuggingFaceH4/ultrafeedback_binarized",
        SourceFilter(),
        {
            "prompt": "text",
            "chosen": "list",
            "rejected": "list",
            "score_chosen": "number",
            "score_rejected": "number",
        },
    ),
    Format(
        "codeultrafeedback",
        adapt_codeultrafeedback,
        "ai_rating_1_5",
        "coseus/CodeUltraFeedback",
        SourceFilter(min_margin=1.0),
        {"instruction": "text", "responses": "list", "annotations": "list"},
    ),
)
