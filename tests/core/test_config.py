import dataclasses

import pytest
import yaml

from rlhf.core import config
from rlhf.core.config import ConfigError, WorldConfig, load_params, parse_params

from ..conftest import REPO


def test_repo_params_load_and_match_documented_defaults():
    p = load_params(REPO / "params.yaml")
    assert p.mix.recipe in p.mix.recipes
    assert p.prompts.n_slices >= 3


def _differences(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d
            for k in a.keys() | b.keys()
            for d in _differences(a.get(k), b.get(k), f"{prefix}{k}.")
        ]
    return [] if a == b else [f"{prefix[:-1]}: code {a!r}, params.yaml {b!r}"]


def test_the_code_defaults_are_the_committed_params():
    # One source of defaults: a key left out of params.yaml means what params.yaml says.
    committed = load_params(REPO / "params.yaml")
    diff = _differences(config.to_dict(config.Params()), config.to_dict(committed))
    assert not diff, diff
    assert parse_params({}) == committed


def test_a_section_given_in_part_keeps_its_own_defaults():
    # dpo.train's defaults are DPO's (batch 64, 4 micro-batches), not TrainConfig's class
    # defaults: overriding its learning rate alone leaves the rest as the section had it.
    p = parse_params({"dpo": {"train": {"lr": 1e-4}}})
    assert p.dpo.train == dataclasses.replace(config.Params().dpo.train, lr=1e-4)
    assert p.dpo.train.batch_size == 64 and p.dpo.train.micro_batches == 4
    assert p.dpo.beta == config.Params().dpo.beta
    assert parse_params({"sft": {"train": {"epochs": 1}}}).sft.train.micro_batches == 4


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"world": {"sead": 1}}, "world.sead: unknown key"),
        ({"bogus": {}}, "bogus: unknown key"),
        ({"world": {"defect_rate": 1.5}}, "world.defect_rate: must be < 1.0, got 1.5"),
        (
            {"world": {"annotator_temperature": -1}},
            "world.annotator_temperature: must be > 0.0, got -1",
        ),
        ({"world": {"seed": "zero"}}, "world.seed: must be an integer, got 'zero'"),
        ({"world": {"seed": True}}, "world.seed: must be an integer, got True"),
        ({"prompts": {"eval_size": 0}}, "prompts.eval_size: must be >= 1, got 0"),
        (
            {"mix": {"filters": {"shp": {"min_ratio": 0.5}}}},
            "mix.filters.shp.min_ratio: must be >= 1.0, got 0.5",
        ),
        (
            {"mix": {"filters": {"pku_safe": {"label": "nicer"}}}},
            "mix.filters.pku_safe.label: must be one of",
        ),
        ({"mix": {"filters": {"hh": {"max_pairs": 1}}}}, "mix.filters.hh.max_pairs: unknown key"),
        ({"mix": {"recipe": "mix9"}}, "mix.recipe: must be one of ['mix1', 'mix2'], got 'mix9'"),
        (
            {"mix": {"recipes": {"mine": ["hh", "reddit"]}}},
            "mix.recipes.mine[1]: unknown source 'reddit'",
        ),
        ({"mix": {"recipes": "mix1"}}, "mix.recipes: must be a mapping"),
        ({"world": {"sizes": {"hh": 1}}}, "world.sizes.ultrafeedback: missing"),
        (
            {"world": {"sizes": {**WorldConfig().sizes, "shp": -5}}},
            "world.sizes.shp: must be >= 0, got -5",
        ),
        ({"pairs": {"min_margin": -0.1}}, "pairs.min_margin: must be >= 0.0, got -0.1"),
        (
            {
                "iterations": {"iter_1": {"policy_in": "models/sft", "prompt_split": "train_2"}},
                "onpolicy_control": {"prompt_splits": ["train_2"]},
            },
            "onpolicy_control.prompt_splits[0]: 'train_2' is already used by iterations.iter_1",
        ),
        (
            {"onpolicy_control": {"prompt_splits": ["train_9"]}},
            "onpolicy_control.prompt_splits[0]: 'train_9' is not a training split",
        ),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert message in str(e.value)


def test_error_names_the_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"prompts": {"slice_size": -3}}))
    with pytest.raises(ConfigError, match=r"p\.yaml: prompts\.slice_size: must be >= 1, got -3"):
        load_params(f)


def test_ints_are_accepted_for_floats_and_kept_typed():
    p = parse_params({"world": {"verbosity_bias": 0}})
    assert isinstance(p.world.verbosity_bias, float)


def test_every_config_field_has_a_docstring():
    classes = [
        c for c in vars(config).values() if dataclasses.is_dataclass(c) and isinstance(c, type)
    ]
    assert len(classes) >= 4
    for cls in classes:
        docs = config.field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"{cls.__name__} fields without docstring: {missing}"
