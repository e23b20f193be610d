"""Property tests: every reader, on any rows at all, never crashes and accounts for every row
(kept + quarantined = rows read; HelpSteer pairs rows with each other, so there each row is
in a pair or in the quarantine)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlhf.core.datafiles import BadRow
from rlhf.preferences.formats import FORMATS, convert_rows
from rlhf.prompts.sources import PROMPT_FORMATS, convert_prompts

# Every field name any reader looks at, so random rows often reach deep into the adapters.
FIELDS = sorted(
    {f for fmt in FORMATS.values() for f in fmt.fields}
    | {"input", "system", "history", "messages", "turns", "category", "subcategory", "question"}
    | {"annotator2", "annotator3", "completions", "rating", "status", "chosen_score", "score_A"}
    | {
        "system_prompt",
        "conversation",
        "prompt",
        "text",
        "is_response_0_safe",
        "is_response_1_safe",
    }
    | {"correctness", "coherence", "complexity", "verbosity", "labels"}
)
KEYS = ["role", "content", "from", "value", "type", "text", "response", "overall_score", "model"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "",
            " ",
            "user",
            "assistant",
            "human",
            "gpt",
            "system",
            "text",
            "a",
            "\n\nHuman: x\n\nAssistant: y",
        ]
    ),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
rows = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(FIELDS), values, max_size=8),
        st.builds(BadRow, st.just("invalid JSON"), st.text(max_size=5)),
    ),
    max_size=8,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows)
def test_every_preference_reader_accounts_for_every_row(rows):
    for name in FORMATS:
        res = convert_rows(name, rows)
        seen = {q["source_row"] for q in res.quarantine} | {p["source_row"] for p in res.pairs}
        if name == "helpsteer":
            partners = {int(p["pair_id"].rsplit("-", 1)[1]) for p in res.pairs}
            assert seen | partners == set(range(len(rows))), name
        else:
            assert len(res.pairs) + len(res.quarantine) == len(rows), name
        for p in res.pairs:  # what is kept is a well-formed pair of text messages
            assert all(isinstance(m["content"], str) for m in p["chosen"] + p["rejected"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows)
def test_every_prompt_reader_accounts_for_every_row(rows):
    for name in PROMPT_FORMATS:
        pool, quarantine, report = convert_prompts(name, rows)
        assert pool.num_rows + len(quarantine) == len(rows) == report["rows"], name


helpsteer_rows = st.lists(
    st.fixed_dictionaries(
        {
            "prompt": st.sampled_from(["p1", "p2", "p3"]),
            "response": st.uuids().map(str),
            **{a: st.integers(0, 4) for a in ("helpfulness", "correctness", "coherence")},
            **{a: st.integers(0, 4) for a in ("complexity", "verbosity")},
        }
    ),
    max_size=10,
)


@settings(max_examples=100, deadline=None)
@given(rows=helpsteer_rows)
def test_helpsteer_puts_every_row_in_a_pair_or_the_quarantine(rows):
    res = convert_rows("helpsteer", rows)
    kept = {p["source_row"] for p in res.pairs} | {
        int(p["pair_id"].rsplit("-", 1)[1]) for p in res.pairs
    }
    assert kept | {q["source_row"] for q in res.quarantine} == set(range(len(rows)))
