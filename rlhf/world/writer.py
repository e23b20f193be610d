"""Simulated responders: write a response to a world prompt at a given skill and verbosity.

skill in [0, 1] sets how often facts, answers and safety calls are right; verbosity is the
expected number of filler sentences. Demonstrations, preference sources and their defects
are all written by this one function, so their quality is controlled and measurable.
"""

from __future__ import annotations

import math
import random
import re

from rlhf.world import kb
from rlhf.world.prompts import Task, parse


def _wrong(rng: random.Random, pool: tuple[str, ...], truth: str) -> str:
    return rng.choice([x for x in pool if x != truth])


def _facts(task: Task, rng: random.Random, skill: float, n_facts: int) -> list[str]:
    e = kb.BY_NAME[task.entity]
    p_err = 0.55 * (1.0 - skill)
    color = e.color if rng.random() > p_err else _wrong(rng, kb.COLORS, e.color)
    size = e.size if rng.random() > p_err else _wrong(rng, kb.SIZES, e.size)
    place = e.place if rng.random() > p_err else _wrong(rng, kb.PLACES[e.kind], e.place)
    subject = f"the {e.name}" if rng.random() < 0.6 + 0.4 * skill else "it"
    sentences = [
        rng.choice([f"{subject} is {color}.", f"{subject} has a {color} color."]),
        rng.choice([f"it is {size}.", f"it is a {size} {e.kind}."]),
        kb.PLACE_SENTENCE[e.kind].format(place=place),
    ]
    # The subject sentence always comes first, so "it" has something to refer to.
    return sentences[:n_facts]


def _arith(task: Task, prompt: str, rng: random.Random, skill: float) -> list[str]:
    ans = task.answer
    assert ans is not None
    if rng.random() < 0.7 * (1.0 - skill):
        ans = ans + rng.choice([-3, -2, -1, 1, 2, 10])
    nums = [int(x) for x in re.findall(r"\d+", prompt)]
    a, b = nums[0], nums[1]
    op = (
        "plus"
        if "plus" in prompt
        else "minus"
        if "minus" in prompt or "apples" in prompt
        else "times"
    )
    if rng.random() < 0.5:
        return [f"{a} {op} {b} is {ans}."]
    return [f"first take {a}.", f"then {op} {b}.", f"the answer is {ans}."]


def write(prompt: str, rng: random.Random, skill: float, verbosity: float) -> str:
    """A response to world prompt `prompt` by a writer of `skill` and `verbosity`."""
    task = parse(prompt)
    skill = min(1.0, max(0.0, skill))
    body: list[str]
    if task.kind == "describe":
        n = 3 if rng.random() < 0.4 + 0.6 * skill else rng.choice([1, 2])
        body = _facts(task, rng, skill, n)
    elif task.kind == "brief":
        if rng.random() < 0.7 * (1.0 - skill):  # ignores "in a few words"
            body = _facts(task, rng, skill, 3)
        else:
            e = kb.BY_NAME[task.entity]
            color = e.color if rng.random() < 0.5 + 0.5 * skill else _wrong(rng, kb.COLORS, e.color)
            body = [f"the {e.name} is {e.size} and {color}."]
    elif task.kind == "color":
        e = kb.BY_NAME[task.entity]
        ok = rng.random() < 0.45 + 0.55 * skill
        body = [f"the {e.name} is {e.color if ok else _wrong(rng, kb.COLORS, e.color)}."]
    elif task.kind == "place":
        e = kb.BY_NAME[task.entity]
        ok = rng.random() < 0.45 + 0.55 * skill
        place = e.place if ok else _wrong(rng, kb.PLACES[e.kind], e.place)
        body = [kb.PLACE_SENTENCE[e.kind].format(place=place)]
    elif task.kind == "name":
        good = [o for o in kb.ENTITIES if o.color == task.color and o.kind == task.thing]
        o = rng.choice(good) if rng.random() < 0.4 + 0.6 * skill else rng.choice(kb.ENTITIES)
        body = [f"the {o.name} is a {o.color} {o.kind}."]
    elif task.kind == "harmful":
        if rng.random() < 0.35 + 0.65 * skill:
            body = [rng.choice(kb.REFUSALS)]
        else:
            a, b = rng.choice(kb.HARMFUL_STEPS)
            body = ["sure.", f"first {a}.", f"then {b}."]
    elif task.kind == "benign":
        if rng.random() < 0.45 + 0.55 * skill:
            steps = next(st for v, t, st in kb.BENIGN if f"{v} {t}" == task.request)
            body = ["sure.", f"first {steps[0]}.", f"then {steps[1]}."]
        else:
            body = [rng.choice(kb.REFUSALS)]
    elif task.kind == "arith":
        body = _arith(task, prompt, rng, skill)
    else:
        raise ValueError(task.kind)

    n_fill = _poisson(rng, verbosity)
    fillers = [rng.choice(kb.FILLERS) for _ in range(n_fill)]
    n_intro = rng.randint(0, min(1, n_fill))
    sentences = fillers[:n_intro] + body + fillers[n_intro:]
    if rng.random() < 0.25 * (1.0 - skill):  # stutter: a sentence said twice
        i = rng.randrange(len(sentences))
        sentences.insert(i, sentences[i])
    return " ".join(sentences)


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; lam is small (a few filler sentences).
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
