"""Simulated preference sources mirroring the diversity of the paper's Table 1.

Each source is written in its *own native shape* (see ``rlhf.core.schemas.RAW_SOURCES``) by its
own kind of annotator, and a share of rows is deliberately defective, so the adapters and
filters in ``rlhf.preferences.mix`` do real work:

- hh:            human-like Bradley-Terry-noisy pairs, whole transcripts as strings (HH-RLHF)
- ultrafeedback: an AI annotator's 1-10 ratings of 4 completions, biased toward longer answers
- helpsteer:     absolute 0-4 attribute scores per response; pairs are built downstream
- shp:           vote scores of replies to a post; only ratio >= 2 kept downstream, <= 5/post
- pku_safe:      safety pairs with is_safe flags and better/safer ids (PKU-SafeRLHF)
- ultrainteract: reasoning pairs, correct vs incorrect final answer (UltraInteract)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from rlhf.core.config import WorldConfig
from rlhf.world import kb
from rlhf.world.judge import judge, words
from rlhf.world.prompts import sample_prompt
from rlhf.world.writer import DEMONSTRATION_FAMILY, SOURCE_FAMILIES, UF_MODEL_FAMILY, write

Row = dict[str, Any]


def rng_for(seed: int, stream: str) -> random.Random:
    """An independent, reproducible random stream per (seed, purpose).

    random.Random seeded with a str hashes it with SHA-512: stable across processes,
    unlike hash(), which Python salts per run.
    """
    return random.Random(f"{seed}:{stream}")


def _respond(
    prompt: str, rng: random.Random, source: str, skill: float | None = None, family: str = ""
) -> str:
    """A response by one of `source`'s writer families (never the SFT demonstrator's)."""
    s = rng.random() if skill is None else skill
    fam = family or rng.choice(SOURCE_FAMILIES[source])
    return write(prompt, rng, s, verbosity=rng.uniform(0.0, 3.0), family=fam)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _hh_transcript(turns: list[tuple[str, str]]) -> str:
    return "".join(f"\n\nHuman: {u}\n\nAssistant: {a}" for u, a in turns)


def hh(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for _ in range(n):
        _, prompt = sample_prompt(rng)
        a, b = _respond(prompt, rng, "hh"), _respond(prompt, rng, "hh")
        ga, gb = judge(prompt, a).gold, judge(prompt, b).gold
        a_wins = rng.random() < _sigmoid((ga - gb) / cfg.annotator_temperature)
        history: list[tuple[str, str]] = []
        if rng.random() < cfg.multi_turn_rate:
            _, earlier = sample_prompt(rng)
            history = [(earlier, _respond(earlier, rng, "hh", skill=0.9))]
        chosen, rejected = (a, b) if a_wins else (b, a)
        rows.append(
            {
                "chosen": _hh_transcript(history + [(prompt, chosen)]),
                "rejected": _hh_transcript(history + [(prompt, rejected)]),
            }
        )
    return rows


def _hh_defect(row: Row, kind: str) -> Row:
    if kind == "empty_turn":
        head, _, _ = row["chosen"].rpartition("\n\nAssistant: ")
        row["chosen"] = head + "\n\nAssistant: "
    elif kind == "identical":
        row["rejected"] = row["chosen"]
    elif kind == "missing":
        row["rejected"] = None
    elif kind == "malformed":
        row["chosen"] = row["chosen"].replace("\n\nAssistant: ", " ")
    return row


def ultrafeedback(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for _ in range(n):
        _, prompt = sample_prompt(rng)
        completions = []
        for m in rng.sample(["alpha-7b", "beta-13b", "gamma-70b", "delta-2b", "eps-34b"], 4):
            text = _respond(prompt, rng, "ultrafeedback", family=UF_MODEL_FAMILY[m])
            v = judge(prompt, text)
            # The AI judge likes long answers: a bonus per word on top of the gold score.
            biased = v.gold + cfg.verbosity_bias * (v.n_words - 12) + rng.gauss(0.0, 0.04)
            score = round(min(10.0, max(1.0, 1.0 + 9.0 * biased)) * 2) / 2  # half-point scale
            completions.append({"model": m, "response": text, "overall_score": score})
        rows.append({"source": "evol_instruct_sim", "prompt": prompt, "completions": completions})
    return rows


def _uf_defect(row: Row, kind: str) -> Row:
    best = max(range(4), key=lambda i: row["completions"][i]["overall_score"])
    if kind == "empty_turn":
        row["completions"][best]["response"] = "   "
    elif kind == "missing":
        row["completions"][_row_pick(row)]["overall_score"] = None
    elif kind == "identical":
        row["completions"] = [dict(row["completions"][0]) for _ in range(4)]
    elif kind == "malformed":
        row["prompt"] = None
    return row


def _row_pick(row: Row) -> int:
    # Deterministic "random" completion index from the row's own content.
    return len(row["prompt"] or "") % 4


def helpsteer(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for _ in range(n):
        _, prompt = sample_prompt(rng)
        for _ in range(rng.choice([2, 3, 3])):
            text = _respond(prompt, rng, "helpsteer")
            v = judge(prompt, text)

            def q(x: float) -> int:
                return int(min(4, max(0, round(4 * x + rng.gauss(0.0, 0.35)))))

            rows.append(
                {
                    "prompt": prompt,
                    "response": text,
                    "helpfulness": q(v.gold),
                    "correctness": q(v.correctness),
                    "coherence": q(v.fluency),
                    "complexity": int(rng.choice([0, 1, 1, 2])),
                    "verbosity": int(min(4, v.n_words // 8)),
                }
            )
    return rows


def _helpsteer_defect(row: Row, kind: str) -> Row:
    if kind == "empty_turn":
        row["response"] = ""
    elif kind == "missing":
        row["helpfulness"] = None
    elif kind in ("identical", "malformed"):
        row["helpfulness"] = 7  # outside the 0-4 scale
    return row


def shp(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for post in range(n):
        _, prompt = sample_prompt(rng)
        popularity = rng.uniform(0.5, 3.0)
        replies = []
        for _ in range(rng.choice([3, 4, 4, 5])):
            text = _respond(prompt, rng, "shp")
            g = judge(prompt, text).gold
            votes = max(1, round(math.exp(popularity + 3.0 * g + rng.gauss(0.0, 0.5))))
            replies.append((text, votes))
        for i in range(len(replies)):
            for j in range(i + 1, len(replies)):
                (ta, sa), (tb, sb) = replies[i], replies[j]
                if sa == sb:
                    continue  # SHP has no ties
                if rng.random() < 0.5:
                    (ta, sa), (tb, sb) = (tb, sb), (ta, sa)
                rows.append(
                    {
                        "post_id": f"p{post:06d}",
                        "domain": "askworld_train",
                        "history": prompt,
                        "human_ref_A": ta,
                        "human_ref_B": tb,
                        "labels": int(sa > sb),
                        "score_A": sa,
                        "score_B": sb,
                        "score_ratio": max(sa, sb) / min(sa, sb),
                    }
                )
    return rows


def _shp_defect(row: Row, kind: str) -> Row:
    if kind in ("malformed", "missing"):
        row["labels"] = 1 - row["labels"]  # label contradicts the row's own vote scores
    elif kind == "empty_turn":
        row["history"] = ""
    elif kind == "identical":
        row["human_ref_B"] = row["human_ref_A"]
    return row


def pku_safe(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for _ in range(n):
        _, prompt = sample_prompt(rng, category="safety")
        r0, r1 = _respond(prompt, rng, "pku_safe"), _respond(prompt, rng, "pku_safe")
        v0, v1 = judge(prompt, r0), judge(prompt, r1)
        harmful = _is_harmful(prompt)
        safe0 = not (harmful and "first" in words(r0))
        safe1 = not (harmful and "first" in words(r1))
        better = (
            0 if rng.random() < _sigmoid((v0.gold - v1.gold) / cfg.annotator_temperature) else 1
        )
        safer = better if safe0 == safe1 else (0 if safe0 else 1)
        rows.append(
            {
                "prompt": prompt,
                "response_0": r0,
                "response_1": r1,
                "is_response_0_safe": safe0,
                "is_response_1_safe": safe1,
                "better_response_id": better,
                "safer_response_id": safer,
            }
        )
    return rows


def _is_harmful(prompt: str) -> bool:
    return any(f"{v} {t}" in prompt for v, t in kb.HARMFUL)


def _pku_defect(row: Row, kind: str) -> Row:
    if kind == "malformed":
        if row["is_response_0_safe"] != row["is_response_1_safe"]:
            row["safer_response_id"] = 1 - row["safer_response_id"]  # contradicts the flags
        else:
            row["safer_response_id"] = 2  # not a valid response id
    elif kind == "identical":
        row["response_1"] = row["response_0"]
    elif kind == "missing":
        row["response_0"] = None
    elif kind == "empty_turn":
        row["prompt"] = ""
    return row


def ultrainteract(cfg: WorldConfig, rng: random.Random, n: int) -> list[Row]:
    rows = []
    for parent in range(n):
        _, prompt = sample_prompt(rng, category="reasoning")
        for k in range(rng.choice([1, 1, 2])):
            good = bad = None
            for _ in range(50):  # rejection-sample one correct and one incorrect answer
                text = _respond(prompt, rng, "ultrainteract")
                if judge(prompt, text).correctness == 1.0:
                    good = good or text
                else:
                    bad = bad or text
                if good and bad:
                    break
            if not (good and bad):
                continue
            rows.append(
                {
                    "id": f"ui{parent:06d}_{k}",
                    "parent_id": f"ui{parent:06d}",
                    "task": "Math_CoT",
                    "trajectory": [{"from": "user", "value": prompt}],
                    "chosen": good,
                    "rejected": bad,
                }
            )
    return rows


def _ui_defect(row: Row, kind: str) -> Row:
    if kind == "identical":
        row["rejected"] = row["chosen"]
    elif kind == "empty_turn":
        row["trajectory"] = []
    elif kind in ("missing", "malformed"):
        row["chosen"] = None
    return row


SIMULATORS: dict[str, tuple[Callable[..., list[Row]], Callable[[Row, str], Row]]] = {
    "hh": (hh, _hh_defect),
    "ultrafeedback": (ultrafeedback, _uf_defect),
    "helpsteer": (helpsteer, _helpsteer_defect),
    "shp": (shp, _shp_defect),
    "pku_safe": (pku_safe, _pku_defect),
    "ultrainteract": (ultrainteract, _ui_defect),
}
DEFECT_KINDS = ("empty_turn", "identical", "missing", "malformed")


def simulate_source(name: str, cfg: WorldConfig) -> list[Row]:
    """Rows of source `name` in its native shape, a `cfg.defect_rate` share corrupted."""
    make, corrupt = SIMULATORS[name]
    rng = rng_for(cfg.seed, f"source/{name}")
    rows = make(cfg, rng, cfg.sizes[name])
    defect_rng = rng_for(cfg.seed, f"defects/{name}")
    for i, row in enumerate(rows):
        if defect_rng.random() < cfg.defect_rate:
            rows[i] = corrupt(row, defect_rng.choice(DEFECT_KINDS))
    return rows


def prompt_pool(cfg: WorldConfig) -> list[Row]:
    rng = rng_for(cfg.seed, "prompt_pool")
    rows = []
    for i in range(cfg.prompt_pool_size):
        category, text = sample_prompt(rng)
        rows.append(
            {
                "pool_row": i,
                "messages": [{"role": "user", "content": text}],
                "category": category,
                "source": "world",
            }
        )
    return rows


def demonstrations(cfg: WorldConfig) -> list[Row]:
    """SFT data of mixed quality: skill ~ Beta(2, 2), so an imitating policy lands mid-range."""
    rng = rng_for(cfg.seed, "demonstrations")
    rows = []
    for _ in range(cfg.demonstrations):
        category, text = sample_prompt(rng)
        response = write(
            text,
            rng,
            rng.betavariate(2.0, 2.0),
            verbosity=rng.uniform(0.0, 2.5),
            family=DEMONSTRATION_FAMILY,
        )
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": text},
                    {"role": "assistant", "content": response},
                ],
                "category": category,
            }
        )
    return rows
