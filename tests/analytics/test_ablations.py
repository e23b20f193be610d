"""Ablations: the exact dvc commands, and collection of finished experiments from git refs."""

import copy
import json
import subprocess
from pathlib import Path

import yaml

from rlhf.analytics import ablations
from rlhf.analytics.ablations import ABLATIONS, NUMERICS, collect, command, fingerprint, load
from rlhf.core.config import parse_params

REPO_PARAMS = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())


def _params(**changes):
    """The committed params.yaml with dotted-key changes."""
    p = copy.deepcopy(REPO_PARAMS)
    p["iterations"] = {"iter_1": p["iterations"]["iter_1"]}  # the runs below write iter_1 only
    for key, value in changes.items():
        *head, last = key.split(".")
        d = p
        for h in head:
            d = d.setdefault(h, {})
        d[last] = value
    return p


ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/bin:/bin",
}


def test_a_key_params_yaml_leaves_at_its_default_is_added_with_a_plus(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("sft: {seed: 0}\nreward_model: {seed: 0}\n")
    c = command("single_reward_model", params_file=f)
    assert c[6:] == [
        "-S",
        "+reward_model.ensemble=1",  # DVC refuses -S on a key the file does not have
        "-S",
        "+reward_model.train.epochs=2.0",
    ]
    f.write_text("reward_model: {seed: 0, ensemble: 3}\n")
    assert command("single_reward_model", params_file=f)[6:8] == ["-S", "reward_model.ensemble=1"]


def test_commands_name_the_experiment_and_set_only_its_params():
    c = command("no_length_penalty")
    assert c[:6] == ["dvc", "exp", "run", "--temp", "-n", "abl-no_length_penalty"]
    assert c[6:] == ["-S", "score.length_penalty=0.0"]
    assert command("n_2", {"seeds": [0]})[6:] == ["-S", "generate.n=2", "-S", "seeds=[0]"]
    # The six ablations are all there.
    assert {
        "no_length_penalty",
        "reference_previous",
        "history_accumulated",
        "n_2",
        "temperature_0.7",
        "best_random",
    } <= set(ABLATIONS)


def _metrics(wr, length):
    iv = lambda m: {"mean": m, "lo": m - 0.02, "hi": m + 0.02}  # noqa: E731
    return {
        "gold_mean": iv(0.6),
        "win_rate_vs_sft": iv(wr),
        "lc_win_rate_vs_sft": iv(wr),
        "mean_length_words": iv(length),
    }


def _commit(root, params, final_wr, length, rm_eval=None, numerics=NUMERICS):
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    # The run's own code, where collect reads the numerics epoch it ran with.
    (root / "rlhf/analytics").mkdir(parents=True, exist_ok=True)
    (root / "rlhf/analytics/ablations.py").write_text(f"NUMERICS = {numerics}\n")
    (root / "reports/eval").mkdir(parents=True, exist_ok=True)
    (root / "reports/eval/iter_1.json").write_text(json.dumps(_metrics(final_wr, length)))
    if rm_eval is not None:
        (root / "reports/rm_eval.json").write_text(json.dumps(rm_eval))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=root, check=True, env=ENV)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_collect_reads_baseline_and_experiments_from_git(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    params = _params(seeds=[0, 1])
    rm = {"accuracy": 0.7, "length_reward_corr_rm": 0.2, "length_reward_corr_gold": -0.1, "n": 5}
    exp = _commit(tmp_path, _params(seeds=[0, 1], **{"score.length_penalty": 0.0}), 0.61, 9.0, rm)
    # DVC keeps each experiment as a commit under refs/exps/<baseline>/<name>.
    subprocess.run(
        ["git", "update-ref", "refs/exps/ab/cdef/abl-no_length_penalty", exp],
        cwd=tmp_path,
        check=True,
        env=ENV,
    )
    _commit(tmp_path, params, 0.58, 12.0)  # the baseline, in the working tree
    runs = {r["ablation"]: r for r in collect(tmp_path)[0]}
    assert set(runs) == {"baseline", "no_length_penalty"}
    assert runs["baseline"]["final"]["mean_length_words"]["mean"] == 12.0
    assert runs["no_length_penalty"]["final"]["mean_length_words"]["mean"] == 9.0
    assert runs["no_length_penalty"]["rev"] == "refs/exps/ab/cdef/abl-no_length_penalty"
    assert runs["no_length_penalty"]["change"] == "score.length_penalty=0.0"
    assert runs["no_length_penalty"]["seeds"] == 2
    # The run's own RM: its Table 2 accuracy and length preference beside gold's, nothing more.
    assert runs["no_length_penalty"]["rm_eval"] == {k: rm[k] for k in rm if k != "n"}
    saved = json.loads((tmp_path / "reports/ablations.json").read_text())
    assert [r["ablation"] for r in saved["runs"]] == ["baseline", "no_length_penalty"]
    assert saved["stale"] == []


def test_a_seed_matched_baseline_experiment_replaces_the_working_tree(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    params = _params(seeds=[0])
    exp = _commit(tmp_path, params, 0.55, 11.0)
    subprocess.run(
        ["git", "update-ref", "refs/exps/ab/cdef/abl-baseline", exp],
        cwd=tmp_path,
        check=True,
        env=ENV,
    )
    _commit(tmp_path, _params(seeds=[0, 1, 2]), 0.58, 12.0)
    runs, _ = collect(tmp_path)
    assert [r["ablation"] for r in runs] == ["baseline"]
    assert runs[0]["seeds"] == 1 and runs[0]["final"]["win_rate_vs_sft"]["mean"] == 0.55
    assert command("baseline", {"seeds": [0]})[6:] == ["-S", "seeds=[0]"]


def _exp(root, name, params, wr=0.6, length=10.0, numerics=NUMERICS):
    rev = _commit(root, params, wr, length, numerics=numerics)
    subprocess.run(
        ["git", "update-ref", f"refs/exps/ab/cdef/abl-{name}", rev], cwd=root, check=True, env=ENV
    )


def test_a_run_with_other_settings_than_params_yaml_is_left_out_with_the_keys(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    # n_2 was run before the SFT lr was changed: comparing it would mix two experiments.
    _exp(tmp_path, "n_2", _params(**{"generate.n": 2, "sft.train.lr": 3e-3}))
    _exp(tmp_path, "no_length_penalty", _params(**{"score.length_penalty": 0.0}))
    # A run from before a setting existed compares equal on it: the default fills it in.
    old = _params(**{"pairs.selection": "max_random"})
    del old["evaluate"]["judge"]
    _exp(tmp_path, "best_random", old)
    # ... unless the code changed the numbers since: then equal params are another experiment.
    _exp(
        tmp_path, "temperature_0.7", _params(**{"generate.temperature": 0.7}), numerics=NUMERICS - 1
    )
    _commit(tmp_path, _params(), 0.58, 12.0)
    runs, stale = collect(tmp_path)
    runs = [r["ablation"] for r in runs]
    assert runs == ["baseline", "no_length_penalty", "best_random"]
    saved = json.loads((tmp_path / "reports/ablations.json").read_text())
    assert saved["stale"] == [
        {
            "ablation": "n_2",
            "rev": "refs/exps/ab/cdef/abl-n_2",
            "reason": "run with other settings than params.yaml: sft.train.lr",
        },
        {
            "ablation": "temperature_0.7",
            "rev": "refs/exps/ab/cdef/abl-temperature_0.7",
            "reason": f"run by code of numerics epoch {NUMERICS - 1}, this code's is "
            f"{NUMERICS} (NUMERICS in rlhf/analytics/ablations.py)",
        },
    ]
    assert stale == saved["stale"]  # what `rlhf ablations collect` prints


def test_the_report_uses_ablations_only_for_the_params_they_were_collected_for(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    _commit(tmp_path, _params(), 0.58, 12.0)
    collect(tmp_path)
    here = parse_params(_params())
    runs, note = load(tmp_path, here)
    assert [r["ablation"] for r in runs] == ["baseline"] and note is None
    # Only the report's own settings, shard sizes and launchers may differ (they change no
    # number); a key written out at its default is the same params as the key left out.
    for same in (
        {"report.bootstrap": 500},
        {"generate.shard_prompts": 64, "score.shard_rows": 640},
        {"compute.sample_launcher": "torchrun --standalone --nproc_per_node 2"},
    ):
        assert fingerprint(parse_params(_params(**same))) == fingerprint(here), same
    without = _params()
    del without["score"]["batch_tokens"]
    assert fingerprint(parse_params(without)) == fingerprint(here)
    assert fingerprint(parse_params(_params(**{"score.batch_tokens": 4096}))) != fingerprint(here)
    # Another profile (here: another generation length) must not reuse them.
    other = parse_params(_params(**{"generate.max_new_tokens": 7}))
    runs, note = load(tmp_path, other)
    assert runs == [] and "collected for other params" in note
    # Nor ablations run by code of another numerics epoch at these very params.
    assert fingerprint(parse_params(_params(**{"compute.threads": 1}))) != fingerprint(here)
    import rlhf.analytics.ablations as ablations_module

    older = fingerprint(here)
    ablations_module.NUMERICS += 1
    try:
        assert fingerprint(here) != older
        assert load(tmp_path, here)[0] == []
    finally:
        ablations_module.NUMERICS -= 1
    # Nor ablations collected before a default changed: the fingerprint, which hashes only
    # what differs from the defaults, is the same, but the settings written out are not.
    f = tmp_path / "reports/ablations.json"
    saved = json.loads(f.read_text())
    saved["settings"]["offline_dpo.n_pairs"] += 1
    f.write_text(json.dumps(saved))
    runs, note = load(tmp_path, here)
    assert runs == [] and "when offline_dpo.n_pairs had other values" in note
    # A file from before fingerprints or full settings existed is not trusted either.
    f.write_text(json.dumps({k: v for k, v in saved.items() if k != "settings"}))
    assert load(tmp_path, here)[0] == []
    f = tmp_path / "reports/ablations.json"
    f.write_text(json.dumps({"runs": json.loads(f.read_text())["runs"]}))
    assert load(tmp_path, here)[0] == []
    f.unlink()
    assert load(tmp_path, here) == (
        [],
        "not collected yet: run `rlhf ablations run` and then `dvc repro report`",
    )


def test_the_numerics_epoch_is_read_from_the_module_as_written():
    # collect reads it from each experiment's copy of this very file: the pattern must match it.
    assert ablations.numerics_of(Path(ablations.__file__).read_text()) == NUMERICS
    assert ablations.numerics_of("NUMERICS: int = 4\n") is None
