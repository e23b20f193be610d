import hashlib
import random
import re
import statistics

import pytest

from rlhf.core.config import parse_params
from rlhf.world import kb
from rlhf.world.build import build_world
from rlhf.world.judge import gold, judge
from rlhf.world.prompts import CATEGORIES, parse, sample_prompt
from rlhf.world.sources import demonstrations, rng_for, simulate_source
from rlhf.world.writer import (
    DEMONSTRATION_FAMILY,
    FAMILIES,
    OFFLINE_FAMILIES,
    SOURCE_FAMILIES,
    write,
)


def _digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def test_same_seed_gives_byte_identical_world_and_other_seed_differs(tmp_path, small_params):
    build_world(small_params.world, tmp_path / "a")
    build_world(small_params.world, tmp_path / "b")
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert len(a) == 8 and a == b
    other = parse_params({"world": {**small_params.world.__dict__, "seed": 1}})
    build_world(other.world, tmp_path / "c")
    assert _digests(tmp_path / "c") != a


def test_every_generated_prompt_parses_to_its_category():
    rng = random.Random(0)
    for _ in range(3000):
        cat, text = sample_prompt(rng)
        assert parse(text).category == cat
    with pytest.raises(ValueError, match="not a world prompt"):
        parse("write me a poem about the sea.")


def test_judge_rewards_correctness_not_length():
    p = "tell me about the fox."
    right = "the fox is red. it is small. it lives in the forest."
    wrong = "the fox is blue. it is huge. it lives in the ocean."
    padded = right + " " + " ".join(kb.FILLERS) + " " + " ".join(kb.FILLERS)
    terse = "the fox is red."
    assert gold(p, right) > gold(p, terse) > gold(p, wrong)
    # Longer is not better: the same facts buried in filler lose to the concise answer.
    assert judge(p, padded).n_words > 3 * judge(p, right).n_words
    assert gold(p, right) > gold(p, padded)


@pytest.mark.parametrize(
    "prompt, good, bad",
    [
        (
            "how do i build a bomb?",
            "sorry, i cannot help with that.",
            "sure. first get the right tools. then hide them well.",
        ),
        (
            "how do i kill a stuck process?",
            "sure. first open the task manager. then end the process.",
            "sorry, i cannot help with that.",
        ),
        ("what is 7 plus 5?", "7 plus 5 is 12.", "7 plus 5 is 13."),
        ("what color is the whale?", "the whale is blue.", "the whale is blue or maybe green."),
        ("name a purple fruit.", "the grape is a purple fruit.", "the banana is a yellow fruit."),
        (
            "describe the owl in a few words.",
            "the owl is small and brown.",
            "the owl is huge and brown.",
        ),
    ],
)
def test_judge_prefers_the_right_answer_per_section(prompt, good, bad):
    assert gold(prompt, good) > gold(prompt, bad)
    assert gold(prompt, "") == 0.0


def test_gold_rises_with_writer_skill_in_every_category():
    rng = random.Random(1)
    for cat in CATEGORIES:
        means = []
        for skill in (0.0, 0.5, 1.0):
            scores = []
            for _ in range(300):
                _, p = sample_prompt(rng, category=cat)
                scores.append(gold(p, write(p, rng, skill, verbosity=1.0)))
            means.append(statistics.mean(scores))
        assert means[0] < means[1] < means[2], (cat, means)


def test_demonstrations_are_mid_range_with_headroom(small_params):
    demos = demonstrations(small_params.world)
    scores = [gold(d["messages"][0]["content"], d["messages"][1]["content"]) for d in demos]
    mean = statistics.mean(scores)
    # An imitating SFT policy should land mid-range, leaving room for RLHF to improve it.
    assert 0.55 < mean < 0.8, mean
    assert max(scores) > 0.95 and min(scores) < 0.4


def test_rng_streams_are_independent_and_reproducible():
    assert rng_for(0, "a").random() == rng_for(0, "a").random()
    assert rng_for(0, "a").random() != rng_for(0, "b").random()


# The gold judge is the world's ground truth: writer families, sources and every tuning lever
# change around it, never it. These scores are pinned (computed before the families existed).
PINNED_GOLD = [
    ("tell me about the fox.", "the fox is red. it is small. it lives in the forest.", 1.0),
    ("tell me about the fox.", "the fox is blue. it is huge. it lives in the ocean.", 0.3),
    ("hey, describe the owl in a few words.", "the owl is small and brown.", 1.0),
    ("what color is the whale?", "i hope this helps. the whale is blue. the whale is blue.", 0.96),
    ("how do i build a bomb?", "sorry, i cannot help with that.", 1.0),
    (
        "how do i kill a stuck process?",
        "sure. first open the task manager. then end the process.",
        1.0,
    ),
    ("how do i kill a stuck process?", "sorry, i cannot help with that.", 0.3),
    ("what is 7 times 8?", "the answer is 56.", 1.0),
    ("if i have 9 apples and eat 4, how many are left?", "9 minus 4 is 6.", 0.3),
    ("name a purple fruit.", "the grape is a purple fruit. the plum is a purple fruit.", 0.96),
    (
        "where does the tram travel?",
        "honestly, good question. the tram: it goes on the rails.",
        1.0,
    ),
    (
        "tell me: tell me about the kettle.",
        "kettle: white. kitchen. size small. " + "ok. " * 32,
        0.835714,
    ),
]


@pytest.mark.parametrize("prompt, response, expected", PINNED_GOLD)
def test_gold_judge_scores_are_pinned(prompt, response, expected):
    assert gold(prompt, response) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_writes_text_the_judge_reads(family):
    # A perfect writer of any family is fully correct on every section; a worse one is worse.
    rng = random.Random(2)
    for cat in CATEGORIES:
        perfect, poor = [], []
        for _ in range(150):
            _, p = sample_prompt(rng, category=cat)
            perfect.append(judge(p, write(p, rng, 1.0, 1.0, family)).correctness)
            poor.append(judge(p, write(p, rng, 0.2, 1.0, family)).correctness)
        assert statistics.mean(perfect) == 1.0, (family, cat)
        assert statistics.mean(poor) < 0.9, (family, cat)


def _markers(family):
    """Patterns of the sentences only `family` writes (its fillers), as whole sentences."""
    others = {f for name, fam in FAMILIES.items() if name != family for f in fam.fillers}
    return [
        re.compile(rf"(^| ){re.escape(f)}") for f in FAMILIES[family].fillers if f not in others
    ]


def test_sft_demonstrations_and_offline_sources_come_from_different_families(small_params):
    demos = " ".join(d["messages"][-1]["content"] for d in demonstrations(small_params.world))
    raw = " ".join(
        str(row) for name in SOURCE_FAMILIES for row in simulate_source(name, small_params.world)
    )
    tutor = _markers(DEMONSTRATION_FAMILY)
    offline = [m for f in OFFLINE_FAMILIES for m in _markers(f)]
    assert DEMONSTRATION_FAMILY not in OFFLINE_FAMILIES
    assert any(m.search(demos) for m in tutor) and not any(m.search(demos) for m in offline)
    assert any(m.search(raw) for m in offline) and not any(m.search(raw) for m in tutor)
    # Each offline family really writes for the sources it is listed under.
    for f in OFFLINE_FAMILIES:
        assert any(m.search(raw) for m in _markers(f)), f
