"""stanfordnlp/SHP: Reddit answers ranked by votes."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator

from rlhf.core.config import SourceFilter
from rlhf.preferences.adapters import (
    Candidate,
    Drop,
    Format,
    Row,
    assistant_turn,
    check_fields,
    grouped,
    user_turn,
)


@grouped
def adapt_shp(rows: list[Row], flt: SourceFilter, rng: random.Random) -> Iterator[Candidate | Drop]:
    per_post: dict[str, list[tuple[float, int, Candidate]]] = defaultdict(list)
    for i, row in enumerate(rows):
        if d := check_fields(
            row,
            i,
            {
                "post_id": "any",
                "history": "text",
                "human_ref_A": "text",
                "human_ref_B": "text",
                "labels": "any",
                "score_A": "number",
                "score_B": "number",
            },
        ):
            yield d
            continue
        sa, sb = row["score_A"], row["score_B"]
        if row["labels"] not in (0, 1):
            yield Drop(i, "invalid_label", "labels", f"labels={row['labels']} is not 0 or 1", row)
            continue
        if sa == sb or (row["labels"] == 1) != (sa > sb):
            yield Drop(
                i,
                "label_contradicts_scores",
                "labels",
                f"labels={row['labels']} but score_A={sa}, score_B={sb}",
                row,
            )
            continue
        ratio = max(sa, sb) / max(min(sa, sb), 1)
        if ratio < flt.min_ratio:
            yield Drop(
                i, "below_min_ratio", "score_ratio", f"ratio {ratio:.3f} < {flt.min_ratio}", row
            )
            continue
        prompt = [user_turn(row["history"])]
        a, b = assistant_turn(row["human_ref_A"]), assistant_turn(row["human_ref_B"])
        c, r = (a, b) if row["labels"] == 1 else (b, a)
        cand = Candidate(i, prompt + [c], prompt + [r], float(max(sa, sb)), float(min(sa, sb)))
        per_post[row["post_id"]].append((ratio, i, cand))
    for post, cands in per_post.items():
        # Keep the most clear-cut pairs of each post (highest ratio first, then row order).
        cands.sort(key=lambda t: (-t[0], t[1]))
        cap = flt.max_pairs_per_prompt or len(cands)
        for _, _, cand in cands[:cap]:
            yield cand
        for ratio, i, _ in cands[cap:]:
            yield Drop(
                i,
                "over_pair_cap",
                "post_id",
                f"post {post} already has {cap} pairs with a higher ratio than {ratio:.3f}",
                rows[i],
            )


FORMATS = (
    Format(
        "shp",
        adapt_shp,
        "reddit_votes",
        "stanfordnlp/SHP",
        SourceFilter(min_ratio=2.0, max_pairs_per_prompt=5),
        {
            "post_id": "any",
            "history": "text",
            "human_ref_A": "text",
            "human_ref_B": "text",
            "labels": "any",
            "score_A": "number",
            "score_B": "number",
        },
    ),
)
