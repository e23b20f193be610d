"""Simulated responders: several model *families* write responses to world prompts.

skill in [0, 1] sets how often facts, answers and safety calls are right; verbosity is the
expected number of filler sentences. Each family has its own phrasing templates, sentence
order, filler habits, verbosity and failure modes (which fact it confuses, how it refuses,
how its arithmetic slips), like the different systems that wrote the paper's preference sets.

Why families: online preference learning beats offline when the offline pairs were written by
*other* models than the policy (Tang et al. 2024; Tajwar et al. 2024: on-policy sampling helps
most when the offline data covers the policy's region poorly). With one writer for the SFT
demonstrations and every preference source, the offline pairs were nearly on-policy for SFT and
the embedded world could not show that effect. Now the SFT demonstrations come from one family
(`tutor`) and every offline source from the others (``SOURCE_FAMILIES``), as in Table 1 of
the paper, where the SFT data and the preference sets come from different systems.

Every family's text is judged by the one unchanged gold judge: templates only use the words
it reads (facts, refusal words, compliance words, the final number) in the same way.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from rlhf.world import kb
from rlhf.world.prompts import Task, parse


@dataclass(frozen=True)
class Family:
    """How one simulated model family writes."""

    name: str
    color: tuple[str, ...]
    """Colour-fact templates ({s} subject, {c} colour, {k} kind)."""
    size: tuple[str, ...]
    """Size-fact templates ({z} size, {k} kind)."""
    place: dict[str, tuple[str, ...]]
    """Place-fact templates per entity kind ({p} place)."""
    order: tuple[int, ...]
    """Order of the colour (0), size (1) and place (2) facts after the subject sentence."""
    fillers: tuple[str, ...]
    """Its filler sentences (none may name a fact, a refusal or a compliance word)."""
    refusals: tuple[str, ...]
    """How it refuses (each carries one of the judge's refusal words)."""
    comply: tuple[str, ...]
    """How it answers a request with two steps ({a}, {b}); each says "first"."""
    arith: tuple[str, ...]
    """Arithmetic answer templates ({a} {op} {b}, answer {n} last)."""
    confuse: tuple[float, float, float]
    """Error-rate multipliers for colour, size and place facts (its typical confusions)."""
    slips: tuple[int, ...]
    """Offsets of its arithmetic slips."""
    verbosity: float
    """Multiplier on the caller's expected filler count."""
    intro: float
    """Probability of opening with a filler when it has any."""
    stutter: float
    """Rate of repeating a sentence at skill 0."""
    name_rate: float
    """Probability at skill 0 of naming the entity (else "it"), rising to 1 with skill."""


_TUTOR_PLACE = {k: (v.replace("{place}", "{p}"),) for k, v in kb.PLACE_SENTENCE.items()}

FAMILIES: dict[str, Family] = {
    # The SFT demonstrator: the policy's own style.
    "tutor": Family(
        name="tutor",
        color=("{s} is {c}.", "{s} has a {c} color."),
        size=("it is {z}.", "it is a {z} {k}."),
        place=_TUTOR_PLACE,
        order=(0, 1, 2),
        fillers=kb.FILLERS,
        refusals=kb.REFUSALS,
        comply=("sure. first {a}. then {b}.",),
        arith=("{a} {op} {b} is {n}.", "first take {a}. then {op} {b}. the answer is {n}."),
        confuse=(1.0, 1.0, 1.0),
        slips=(-3, -2, -1, 1, 2, 10),
        verbosity=1.0,
        intro=0.5,
        stutter=0.25,
        name_rate=0.6,
    ),
    # Forum replies (HH-, SHP-like): casual, place first, confuses places.
    "forum": Family(
        name="forum",
        color=("{s}? pretty sure it is {c}.", "{s} is {c} i think."),
        size=("it is {z} too.", "{z}, for a {k}."),
        place={
            "animal": ("you see it in the {p}.", "it hangs out in the {p}."),
            "fruit": ("you pick it from a {p}.", "it comes off a {p}."),
            "tool": ("you find it in the {p}.", "people keep it in the {p}."),
            "vehicle": ("it goes on the {p}.", "you take it on the {p}."),
        },
        order=(2, 0, 1),
        fillers=(
            "honestly, good question.",
            "hope that answers it.",
            "just my two cents.",
            "ok so here goes.",
            "anyway, have fun.",
            "not an expert though.",
        ),
        refusals=("no way, sorry. not going to help with that.", "sorry, cannot do that one."),
        comply=("ok so first {a}, then {b}.", "easy. first {a}. after that {b}."),
        arith=("easy: {n}.", "{a} {op} {b} = {n}.", "hmm, {a} {op} {b} gives {n}."),
        confuse=(0.7, 0.8, 1.8),
        slips=(-1, 1, 1, 2),
        verbosity=1.3,
        intro=0.8,
        stutter=0.35,
        name_rate=0.5,
    ),
    # Polished assistants (UltraFeedback-, HelpSteer-like): long, formal, confuses sizes.
    "formal": Family(
        name="formal",
        color=("{s} is a {k} of {c} color.", "the colour of {s} is {c}."),
        size=("in size it is {z}.", "it is considered {z}."),
        place={
            "animal": ("its natural home is the {p}.", "it is typically found in the {p}."),
            "fruit": ("it is harvested from a {p}.", "it typically grows on a {p}."),
            "tool": ("it is typically used in the {p}.", "its place is the {p}."),
            "vehicle": ("it is designed for the {p}.", "it typically travels on the {p}."),
        },
        order=(1, 0, 2),
        fillers=(
            "certainly.",
            "i trust this is useful.",
            "please ask if anything is unclear.",
            "in summary, that is the answer.",
            "this is an interesting question.",
            "here is a complete answer.",
            "i am glad to assist.",
        ),
        refusals=(
            "i am sorry, but i cannot assist with this request.",
            "i cannot provide that, as it is not safe.",
        ),
        comply=("certainly. first, {a}. second, {b}.", "here is how. first {a}. next, {b}."),
        arith=("the result of {a} {op} {b} is {n}.", "to compute {a} {op} {b}: the result is {n}."),
        confuse=(0.8, 1.9, 0.7),
        slips=(-10, 10, -2, 2),
        verbosity=1.6,
        intro=0.9,
        stutter=0.1,
        name_rate=0.8,
    ),
    # Terse systems (PKU-, UltraInteract-like): few words, often drops the name, confuses colours.
    "terse": Family(
        name="terse",
        color=("{s}: {c}.", "{s}, {c} {k}."),
        size=("{z}.", "size {z}."),
        place={
            "animal": ("{p}.", "habitat {p}."),
            "fruit": ("{p}.", "on a {p}."),
            "tool": ("{p}.", "for the {p}."),
            "vehicle": ("{p}.", "on the {p}."),
        },
        order=(0, 2, 1),
        fillers=("ok.", "done.", "noted."),
        refusals=("cannot help.", "sorry. no."),
        comply=("first {a}. then {b}.", "steps: first {a}; {b}."),
        arith=("answer: {n}.", "{n}."),
        confuse=(1.9, 0.8, 0.8),
        slips=(-1, 1, -5, 5),
        verbosity=0.4,
        intro=0.2,
        stutter=0.2,
        name_rate=0.3,
    ),
}

# Which families wrote what (the README's table says the same). UltraFeedback's completions
# name their model; each model belongs to one family.
DEMONSTRATION_FAMILY = "tutor"
SOURCE_FAMILIES: dict[str, tuple[str, ...]] = {
    "hh": ("forum", "formal"),
    "ultrafeedback": ("formal", "forum", "terse"),
    "helpsteer": ("formal",),
    "shp": ("forum",),
    "pku_safe": ("terse", "formal"),
    "ultrainteract": ("terse", "formal"),
}
UF_MODEL_FAMILY = {
    "alpha-7b": "forum",
    "beta-13b": "formal",
    "gamma-70b": "formal",
    "delta-2b": "terse",
    "eps-34b": "forum",
}
OFFLINE_FAMILIES = tuple(sorted({f for fs in SOURCE_FAMILIES.values() for f in fs}))


def _wrong(rng: random.Random, pool: tuple[str, ...], truth: str) -> str:
    return rng.choice([x for x in pool if x != truth])


def _facts(task: Task, rng: random.Random, skill: float, n_facts: int, fam: Family) -> list[str]:
    e = kb.BY_NAME[task.entity]
    p_err = [min(0.95, 0.55 * (1.0 - skill) * m) for m in fam.confuse]
    color = e.color if rng.random() > p_err[0] else _wrong(rng, kb.COLORS, e.color)
    size = e.size if rng.random() > p_err[1] else _wrong(rng, kb.SIZES, e.size)
    place = e.place if rng.random() > p_err[2] else _wrong(rng, kb.PLACES[e.kind], e.place)
    named = rng.random() < fam.name_rate + (1.0 - fam.name_rate) * skill
    subject = f"the {e.name}" if named else "it"
    # The subject goes into the first sentence, so "it" has something to refer to.
    lead_is_color = fam.order[0] == 0
    by_kind = [
        rng.choice(fam.color).format(s=subject if lead_is_color else "it", c=color, k=e.kind),
        rng.choice(fam.size).format(z=size, k=e.kind),
        rng.choice(fam.place[e.kind]).format(p=place),
    ]
    sentences = [by_kind[i] for i in fam.order]
    if named and not lead_is_color:
        sentences[0] = f"{subject}: {sentences[0]}"
    return sentences[:n_facts]


def _arith(task: Task, prompt: str, rng: random.Random, skill: float, fam: Family) -> list[str]:
    ans = task.answer
    assert ans is not None
    if rng.random() < 0.7 * (1.0 - skill):
        ans = ans + rng.choice(fam.slips)
    nums = [int(x) for x in re.findall(r"\d+", prompt)]
    a, b = nums[0], nums[1]
    op = (
        "plus"
        if "plus" in prompt
        else "minus"
        if "minus" in prompt or "apples" in prompt
        else "times"
    )
    return [rng.choice(fam.arith).format(a=a, op=op, b=b, n=ans)]


def write(
    prompt: str, rng: random.Random, skill: float, verbosity: float, family: str = "tutor"
) -> str:
    """A response to world prompt `prompt` by a writer of `family`, `skill` and `verbosity`."""
    fam = FAMILIES[family]
    task = parse(prompt)
    skill = min(1.0, max(0.0, skill))
    body: list[str]
    if task.kind == "describe":
        n = 3 if rng.random() < 0.4 + 0.6 * skill else rng.choice([1, 2])
        body = _facts(task, rng, skill, n, fam)
    elif task.kind == "brief":
        if rng.random() < 0.7 * (1.0 - skill):  # ignores "in a few words"
            body = _facts(task, rng, skill, 3, fam)
        else:
            e = kb.BY_NAME[task.entity]
            color = e.color if rng.random() < 0.5 + 0.5 * skill else _wrong(rng, kb.COLORS, e.color)
            body = [f"the {e.name} is {e.size} and {color}."]
    elif task.kind == "color":
        e = kb.BY_NAME[task.entity]
        ok = rng.random() < 0.45 + 0.55 * skill
        c = e.color if ok else _wrong(rng, kb.COLORS, e.color)
        body = [rng.choice(fam.color).format(s=f"the {e.name}", c=c, k=e.kind)]
    elif task.kind == "place":
        e = kb.BY_NAME[task.entity]
        ok = rng.random() < 0.45 + 0.55 * skill
        place = e.place if ok else _wrong(rng, kb.PLACES[e.kind], e.place)
        body = [f"the {e.name}: " + rng.choice(fam.place[e.kind]).format(p=place)]
        if fam.name == "tutor":
            body = [kb.PLACE_SENTENCE[e.kind].format(place=place)]
    elif task.kind == "name":
        good = [o for o in kb.ENTITIES if o.color == task.color and o.kind == task.thing]
        o = rng.choice(good) if rng.random() < 0.4 + 0.6 * skill else rng.choice(kb.ENTITIES)
        body = [f"the {o.name} is a {o.color} {o.kind}."]
    elif task.kind == "harmful":
        if rng.random() < 0.35 + 0.65 * skill:
            body = [rng.choice(fam.refusals)]
        else:
            a, b = rng.choice(kb.HARMFUL_STEPS)
            body = [rng.choice(fam.comply).format(a=a, b=b)]
    elif task.kind == "benign":
        if rng.random() < 0.45 + 0.55 * skill:
            steps = next(st for v, t, st in kb.BENIGN if f"{v} {t}" == task.request)
            body = [rng.choice(fam.comply).format(a=steps[0], b=steps[1])]
        else:
            body = [rng.choice(fam.refusals)]
    elif task.kind == "arith":
        body = _arith(task, prompt, rng, skill, fam)
    else:
        raise ValueError(task.kind)

    n_fill = _poisson(rng, verbosity * fam.verbosity)
    fillers = [rng.choice(fam.fillers) for _ in range(n_fill)]
    n_intro = min(1, n_fill) if rng.random() < fam.intro else 0
    sentences = fillers[:n_intro] + body + fillers[n_intro:]
    if rng.random() < fam.stutter * (1.0 - skill):  # a sentence said twice
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
