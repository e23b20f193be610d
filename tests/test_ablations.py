"""Ablations: the exact dvc commands, and collection of finished experiments from git refs."""

import json
import subprocess

import yaml

from rlhf.ablations import ABLATIONS, collect, command

ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
    "PATH": "/usr/bin:/bin",
}


def test_commands_name_the_experiment_and_set_only_its_params():
    c = command("length_penalty")
    assert c[:6] == ["dvc", "exp", "run", "--temp", "-n", "abl-length_penalty"]
    assert c[6:] == ["-S", "score.length_penalty=0.001"]
    assert command("n_2", {"seeds": [0]})[6:] == ["-S", "generate.n=2", "-S", "seeds=[0]"]
    # The six ablations are all there.
    assert {
        "length_penalty",
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


def _commit(root, params, final_wr, length):
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "reports/eval").mkdir(parents=True, exist_ok=True)
    (root / "reports/eval/iter_1.json").write_text(json.dumps(_metrics(final_wr, length)))
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "x"], cwd=root, check=True, env=ENV)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_collect_reads_baseline_and_experiments_from_git(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    params = {"iterations": {"iter_1": {}}, "seeds": [0, 1]}
    exp = _commit(tmp_path, {**params, "score": {"length_penalty": 0.001}}, 0.61, 9.0)
    # DVC keeps each experiment as a commit under refs/exps/<baseline>/<name>.
    subprocess.run(
        ["git", "update-ref", "refs/exps/ab/cdef/abl-length_penalty", exp],
        cwd=tmp_path,
        check=True,
        env=ENV,
    )
    _commit(tmp_path, params, 0.58, 12.0)  # the baseline, in the working tree
    runs = {r["ablation"]: r for r in collect(tmp_path)}
    assert set(runs) == {"baseline", "length_penalty"}
    assert runs["baseline"]["final"]["mean_length_words"]["mean"] == 12.0
    assert runs["length_penalty"]["final"]["mean_length_words"]["mean"] == 9.0
    assert runs["length_penalty"]["rev"] == "refs/exps/ab/cdef/abl-length_penalty"
    assert runs["length_penalty"]["change"] == "score.length_penalty=0.001"
    assert runs["length_penalty"]["seeds"] == 2
    saved = json.loads((tmp_path / "reports/ablations.json").read_text())
    assert [r["ablation"] for r in saved["runs"]] == ["baseline", "length_penalty"]


def test_a_seed_matched_baseline_experiment_replaces_the_working_tree(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=ENV)
    params = {"iterations": {"iter_1": {}}, "seeds": [0]}
    exp = _commit(tmp_path, params, 0.55, 11.0)
    subprocess.run(
        ["git", "update-ref", "refs/exps/ab/cdef/abl-baseline", exp],
        cwd=tmp_path,
        check=True,
        env=ENV,
    )
    _commit(tmp_path, {**params, "seeds": [0, 1, 2]}, 0.58, 12.0)
    runs = collect(tmp_path)
    assert [r["ablation"] for r in runs] == ["baseline"]
    assert runs[0]["seeds"] == 1 and runs[0]["final"]["win_rate_vs_sft"]["mean"] == 0.55
    assert command("baseline", {"seeds": [0]})[6:] == ["-S", "seeds=[0]"]
