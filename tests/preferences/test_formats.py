"""The mix is consumable by the ecosystem: `datasets` reads it, TRL gets its conversational
preference format from the shared converter."""

import datasets
from trl.data_utils import is_conversational

from rlhf.core.config import MixConfig
from rlhf.core.messages import prompt_id, to_trl_preference
from rlhf.core.schemas import write_table
from rlhf.preferences.mix import build_mix
from rlhf.world.sources import simulate_source


def test_datasets_loads_the_mix_and_trl_format_is_built_from_it(tmp_path, small_params):
    cfg = MixConfig()
    raw = {s: simulate_source(s, small_params.world) for s in cfg.recipes["mix2"]}
    prefs, _, _ = build_mix(cfg, raw)
    path = write_table("preferences", prefs, tmp_path / "preferences.parquet")
    ds = datasets.load_dataset(
        "parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache")
    )
    assert ds.num_rows == prefs.num_rows
    assert set(ds[0]["chosen"][0]) == {"role", "content"}
    trl_ds = ds.map(to_trl_preference, remove_columns=ds.column_names)
    assert set(trl_ds.column_names) == {"prompt", "chosen", "rejected"}
    ex = trl_ds[0]
    assert is_conversational(ex)
    assert ex["prompt"][-1]["role"] == "user"
    assert ex["chosen"][0]["role"] == ex["rejected"][0]["role"] == "assistant"
    # The TRL prompt is exactly the standard row's shared context.
    assert prompt_id(ex["prompt"]) == ds[0]["prompt_id"]
    assert ex["chosen"][0]["content"] != ex["rejected"][0]["content"]


def test_every_embedded_source_goes_through_a_registered_format():
    from rlhf.core.config import SOURCE_NAMES
    from rlhf.preferences.adapters import GROUPED
    from rlhf.preferences.formats import EMBEDDED_FORMATS, FORMATS
    from rlhf.world.sources import SIMULATORS

    # One registry: the world's sources, the params' source names and the formats agree.
    assert set(EMBEDDED_FORMATS) == set(SOURCE_NAMES) == set(SIMULATORS)
    assert all(f in FORMATS for f in EMBEDDED_FORMATS.values())
    # The adapters that pair rows with each other are marked, whichever source uses them.
    assert {FORMATS["helpsteer"].adapter, FORMATS["shp"].adapter} <= GROUPED
