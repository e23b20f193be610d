"""End to end: the real `dvc repro` on a shrunken params override, in fresh git checkouts."""

import json
import math
import platform
import re
import signal
import subprocess
import sys

import pytest
import yaml

from rlhf.core import paths
from rlhf.core.schemas import read_table

from ..conftest import REPO, SMALL_LOOP, make_project, run_dvc, run_rlhf

pytestmark = pytest.mark.slow
DATA_STAGES = ("world", "mix", "prompts")


def lock_hashes(project, stages):
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    return {
        (stage, o["path"]): o["md5"]
        for stage, body in lock["stages"].items()
        if stage in stages
        for o in body.get("outs", [])
    }


def ran_stages(stdout):
    return set(re.findall(r"Running stage '([\w@-]+)'", stdout))


def test_repro_runs_the_whole_loop_and_a_second_repro_runs_nothing(project):
    for p in (paths.PREFERENCES, paths.QUARANTINE, paths.PROMPTS, paths.MIX_TABLE1_MD):
        assert (project / p).exists(), p
    for m in ("base", "sft"):
        assert (project / "models" / m / "model.safetensors").exists(), m
    # The reward model is an ensemble here: its members side by side, and how to combine them.
    for i in range(SMALL_LOOP["reward_model"]["ensemble"]):
        assert (project / "models/reward_model" / f"member_{i}" / "model.safetensors").exists()
    assert (project / "models/reward_model/ensemble.json").exists()
    # The RLHF part is replicated: one policy per seed.
    for m in ("offline_dpo", "onpolicy_dpo", "iter_1"):
        for seed in SMALL_LOOP["seeds"]:
            assert (project / "models" / m / f"seed_{seed}" / "model.safetensors").exists(), m
    again = run_dvc(project, "repro")
    assert again.returncode == 0
    assert not ran_stages(again.stdout), again.stdout
    assert "up to date" in run_dvc(project, "status").stdout


def test_every_stage_ran_in_the_pinned_compute_mode(project):
    """Each stage process read back the ISA and thread count in force: the dvc run's own
    processes, started with no pinning variables in the environment."""
    timings = {f.stem: json.loads(f.read_text()) for f in (project / paths.TIMINGS_DIR).glob("*")}
    assert {"base", "sft", "reward_model", "score@iter_1", "dpo@iter_1"} <= set(timings)
    for name, t in timings.items():
        assert t["compute"]["reproducible"] is True, name
        assert t["startup_s"] is None or 0 < t["startup_s"] < 120, name
        if "torch" in t["compute"]:
            assert t["compute"]["threads"] == 2, name  # compute.threads' default
            if platform.machine() == "x86_64":
                assert t["compute"]["isa"] == "AVX2", name
    assert "torch" in timings["base"]["compute"]
    assert "torch" not in timings["gold"]["compute"]  # a stage that needs no torch loads none


def test_metrics_list_every_policy(project):
    r = run_dvc(project, "metrics", "show", "--json")
    assert r.returncode == 0, r.stderr
    for policy in ("sft", "offline_dpo", "onpolicy_dpo", "iter_1"):
        m = json.loads((project / paths.eval_metrics(policy)).read_text())
        for key in ("win_rate_vs_sft", "gold_mean", "lc_win_rate_vs_sft"):
            iv = m[key]
            assert 0.0 <= iv["lo"] <= iv["mean"] <= iv["hi"] <= 1.0, (policy, key, iv)
        assert sorted(m["by_seed"]) == [str(s) for s in SMALL_LOOP["seeds"]]
        assert f"reports/eval/{policy}.json" in r.stdout
    sft = json.loads((project / paths.eval_metrics("sft")).read_text())["win_rate_vs_sft"]
    assert sft == {"mean": 0.5, "lo": 0.5, "hi": 0.5}


def test_policies_carry_their_distance_from_sft_and_the_proxy_reward(project):
    kl = {
        p: json.loads((project / paths.eval_metrics(p)).read_text())["kl_to_sft"]
        for p in ("sft", "offline_dpo", "onpolicy_dpo", "iter_1")
    }
    assert kl["sft"] == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    # DPO moved every trained policy away from SFT: a positive KL, interval included.
    assert all(kl[p]["lo"] > 0 for p in ("offline_dpo", "onpolicy_dpo", "iter_1")), kl
    ev = read_table("evaluations", project / paths.eval_table("iter_1"))
    assert ev.column("proxy").null_count == 0 and min(ev.column("kl_to_sft").to_pylist()) >= 0


def test_onpolicy_control_samples_sft_on_its_own_splits_and_labels_with_the_rm(project):
    prompts = read_table("prompts", project / paths.PROMPTS).to_pylist()
    split = {r["prompt_id"]: r["split"] for r in prompts}
    scored = read_table("scored", project / paths.CONTROL_DIR / "scored.parquet")
    pairs = read_table("pairs", project / paths.CONTROL_DIR / "pairs.parquet")
    assert {split[p] for p in scored.column("prompt_id").to_pylist()} == set(
        SMALL_LOOP["onpolicy_control"]["prompt_splits"]
    )
    assert set(scored.column("policy").to_pylist()) == {"models/sft"}
    assert sorted(set(pairs.column("seed").to_pylist())) == SMALL_LOOP["seeds"]
    assert all(r["chosen_reward"] > r["rejected_reward"] for r in pairs.to_pylist())


def test_report_renders_every_section_with_its_figures(project):
    html = (project / paths.REPORT_HTML).read_text()
    md = (project / paths.REPORT_MD).read_text()
    for title in (
        "Claims of the paper, checked on this run",
        "Policies: gold reward and win-rate against SFT",
        "Per-iteration trend",
        "On-policy pair statistics",
        "Reward distributions",
        "Length bias of the reward model",
        "Reward-model evaluation",
        "Preference mix",
        "Ablations",
        "Controls",
        "Distance from SFT and reward over-optimisation",
        "On-policy diagnostics: the reward model on the samples it labels",
        "Training curves",
        "What the policies write: one evaluation prompt per category",
    ):
        assert title in html and title in md, title
    figs = (
        "policies",
        "trajectories",
        "overoptimisation",
        "pairs",
        "rewards",
        "length_reward_corr",
        "curves",
    )
    for fig in figs:
        png = project / paths.FIGURES_DIR / f"{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
        assert f"figures/{fig}.png" in md
    assert html.count("data:image/png;base64,") == len(figs)  # self-contained
    # Every claim gets a verdict; none is silently left out.
    verdicts = re.findall(r"<strong>(HOLDS|DOES NOT HOLD|NOT MEASURED)</strong>", html)
    assert len(verdicts) == 5, verdicts
    for policy in ("sft", "offline_dpo", "onpolicy_dpo", "iter_1"):
        assert f"<td>{policy}</td>" in html


def test_dvc_plots_render_from_the_report_series(project, tmp_path):
    r = run_dvc(project, "plots", "show", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["data"]
    # Each CSV series renders to a Vega-Lite spec; each figure is listed as an image.
    for series in ("reports/plots/policies.csv", "reports/plots/length_reward_corr.csv"):
        assert out[series] and "content" in out[series][0], (series, list(out))
    pngs = [k for k in out if k.endswith(".png")]
    assert len(pngs) == 7 and all("url" in out[k][0] for k in pngs), list(out)
    # DVCLive's training curves of every training stage, each TSV a plot of its own.
    assert "errors" not in json.loads(r.stdout), json.loads(r.stdout)["errors"]
    curves = "reports/curves/{}/plots/metrics/{}.tsv"
    for run, metric in (
        ("base", "loss"),
        ("sft", "loss"),
        ("preference_model", "loss"),
        ("reward_model/member_1", "accuracy"),
        ("offline_dpo/seed_0", "rewards/margins"),
        ("onpolicy_dpo/seed_0", "loss"),
        ("iter_1/seed_0", "rewards/margins"),
        ("iter_1/seed_0", "kl_to_sft"),
    ):
        key = curves.format(run, metric)
        assert out.get(key) and "content" in out[key][0], (key, sorted(out))
    # ... and their last values in the stages' metrics, for `dvc exp show`.
    m = json.loads(run_dvc(project, "metrics", "show", "--json").stdout)
    metrics = next(iter(m.values()))["data"]
    assert metrics["reports/train/sft.json"]["data"]["final"]["loss"] > 0


def rlhf_sql_csv(project, query):
    r = subprocess.run(
        [sys.executable, "-m", "rlhf.cli", "sql", "--format", "csv", query],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_sql_over_the_run(project):
    out = rlhf_sql_csv(project, "SELECT seed, count(*) AS n FROM pairs GROUP BY 1 ORDER BY 1")
    lines = out.strip().splitlines()
    assert lines[0] == "seed,n" and [int(x.split(",")[0]) for x in lines[1:]] == SMALL_LOOP["seeds"]
    out = rlhf_sql_csv(
        project, "SELECT policy, win_rate_vs_sft.mean AS w FROM metrics ORDER BY policy"
    )
    assert "sft,0.5" in out


def test_every_sql_query_in_the_docs_runs_on_the_run(project):
    from rlhf.analytics.views import register_views
    from rlhf.core.duck import connect

    analytics = (REPO / "docs" / "analytics.md").read_text()
    block = re.search(r"### Useful queries\n.*?```sql\n(.*?)```", analytics, re.S)
    queries = [q.strip() for q in block.group(1).split(";") if q.strip()]
    assert len(queries) >= 5
    con = connect()
    register_views(con, project)
    for q in queries:
        rows = con.sql(q).fetchall()
        assert rows, q


def test_no_pair_has_chosen_equal_to_rejected(project):
    pairs = read_table("pairs", project / "data/iterations/iter_1/pairs.parquet").to_pylist()
    assert pairs
    assert all(p["chosen"].strip() != p["rejected"].strip() for p in pairs)
    assert all(p["chosen_reward"] > p["rejected_reward"] for p in pairs)
    gens = read_table("generations", project / "data/iterations/iter_1/generations.parquet")
    assert set(gens.column("temperature").to_pylist()) == {1.0}
    n_seeds = len(SMALL_LOOP["seeds"])
    assert gens.num_rows == 4 * SMALL_LOOP["prompts"]["slice_size"] * n_seeds
    assert sorted(set(gens.column("seed").to_pylist())) == SMALL_LOOP["seeds"]
    # Replicates sample differently from their own policies.
    by_seed = {}
    for r in gens.select(["seed", "prompt_id", "sample_idx", "response"]).to_pylist():
        by_seed.setdefault(r["seed"], {})[(r["prompt_id"], r["sample_idx"])] = r["response"]
    a, b = by_seed[SMALL_LOOP["seeds"][0]], by_seed[SMALL_LOOP["seeds"][1]]
    assert sum(a[k] != b[k] for k in a) > len(a) / 4


def test_rm_beats_chance_against_the_gold_judge(project):
    m = json.loads((project / "reports/rm_eval.json").read_text())
    n, acc = m["heldout_pairs"], m["accuracy"]
    assert n > 300
    # One-sided test against a coin (normal approximation to the binomial): p < 0.05.
    z = (acc - 0.5) / math.sqrt(0.25 / n)
    assert z > 1.645, m
    # The paper's Table 2: the three signals on the same pairs, each with an interval.
    assert set(m["signals"]) == {"reward_model", "preference_model", "llm"}
    for v in m["signals"].values():
        a = v["accuracy"]
        assert 0.0 <= a["lo"] <= a["mean"] <= a["hi"] <= 1.0
        assert set(v["accuracy_by_section"]) == set(m["accuracy_by_section"])
    assert m["signals"]["reward_model"]["accuracy"]["mean"] == pytest.approx(acc, abs=1e-4)
    assert m["signals"]["llm"]["counts"]["verdicts"] >= 2 * n
    # What came from the verdict cache is cost, not result: not in the (reproducible) output.
    assert not {"asked", "cached"} & set(m["signals"]["llm"]["counts"])
    assert "Table 2" in (project / "reports/report.md").read_text()
    # Each of the ensemble's members is evaluated alone too.
    assert len(m["member_accuracy"]) == SMALL_LOOP["reward_model"]["ensemble"]
    assert all(0.0 <= a <= 1.0 for a in m["member_accuracy"])
    # ... and on the loop's own samples (the first DPO seed's), beside the ensemble, in the report.
    on = m["onpolicy_members"]["iter_1"]
    assert on["seed"] == 0 and on["gold_pairs"] > 0
    assert len(on["member_accuracy"]) == SMALL_LOOP["reward_model"]["ensemble"]
    assert all(0.0 <= a <= 1.0 for a in [*on["member_accuracy"], on["accuracy"]])
    assert "member 1 alone" in (project / "reports/report.md").read_text()


def test_adding_an_iteration_runs_only_that_iteration(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["iterations"]["iter_2"] = {
        "policy_in": "models/iter_1",
        "prompt_split": "train_2",
        "previous": "iter_1",
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = run_dvc(project, "repro")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # Its five stages, and what summarises every iteration: the gold scores, the RM's members
    # on each iteration's samples (rm_eval) and the report.
    assert ran_stages(r.stdout) == {
        f"{s}@iter_2" for s in ("generate", "score", "pairs", "dpo", "evaluate")
    } | {"gold", "rm_eval", "report"}, r.stdout


def test_a_reader_edit_reruns_mix_and_not_prompts(project):
    # One dataset family's reader, then the registry: only the mix reads preference formats.
    for part in ("readers/hh.py", "formats.py"):
        f = project / "rlhf" / "preferences" / part
        before = f.read_text()
        try:
            f.write_text(before + "\n# an edit to one dataset reader\n")
            r = run_dvc(project, "status", "--json")
            assert r.returncode == 0, r.stderr
            assert set(json.loads(r.stdout)) == {"mix"}, (part, r.stdout)
        finally:
            f.write_text(before)
    assert "up to date" in run_dvc(project, "status").stdout


def test_leaf_param_change_reruns_only_its_stage(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    # The report's own param: the cheapest stage to re-run (rm_eval's took ~25 s here).
    params["report"]["bootstrap"] += 1
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = run_dvc(project, "repro")
    assert r.returncode == 0, r.stderr
    assert ran_stages(r.stdout) == {"report"}, r.stdout
    assert "report.bootstrap" in run_dvc(project, "params", "diff").stdout


def test_killed_writer_leaves_no_partial_output_and_rerun_recovers(project):
    """SIGKILL a process inside the atomic write of a model folder: the old folder stays whole,
    and the re-run stage clears the stale temporary and writes a complete new one."""
    target = project / "models" / "sft"
    before = sorted(p.name for p in target.iterdir())
    code = (
        "import os, signal; from rlhf.core.io import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n"
        "    tmp.mkdir(); (tmp / 'model.safetensors').write_bytes(b'half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in target.iterdir()) == before
    assert list(target.parent.glob("sft.tmp-*"))  # what the killed writer left
    r = run_dvc(project, "repro", "-f", "-s", "sft")
    assert r.returncode == 0, r.stderr
    assert not list(target.parent.glob("sft.tmp-*"))
    assert (target / "model.safetensors").stat().st_size > 1000


def test_separate_runs_give_byte_identical_data(project, tmp_path):
    other = make_project(tmp_path, SMALL_LOOP)
    r = run_dvc(other, "repro", *DATA_STAGES)
    assert r.returncode == 0, r.stderr
    a, b = lock_hashes(project, DATA_STAGES), lock_hashes(other, DATA_STAGES)
    assert len(a) >= 3 and a == b


def test_a_teammate_pulls_the_whole_run_and_reproduces_nothing(project, tmp_path):
    """Every output through a directory remote (`rlhf share push --all`): in a clone, `rlhf
    share pull --all` brings models, tables and figures, and `dvc repro` runs no stage."""
    import os

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t"}
    env.update(GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
    store = tmp_path / "store"
    assert run_dvc(project, "remote", "add", "-f", "-d", "store", str(store)).returncode == 0
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "the run"]):
        subprocess.run(cmd, cwd=project, check=True, env=env)

    assert run_rlhf(project, "share", "push", "--all").returncode == 0
    mate = tmp_path / "mate"
    subprocess.run(["git", "clone", "-q", str(project), str(mate)], check=True)
    pulled = run_rlhf(mate, "share", "pull", "--all")
    assert pulled.returncode == 0, pulled.stderr
    again = run_dvc(mate, "repro")
    assert again.returncode == 0, again.stderr[-3000:]
    assert not ran_stages(again.stdout), again.stdout
    assert (mate / "models/iter_1/seed_0/model.safetensors").exists()


def test_bad_params_fail_with_the_key_named(tmp_path):
    project = make_project(tmp_path, {**SMALL_LOOP, "mix": {"filters": {"shp": {"min_ratio": 0}}}})
    # Every stage validates the whole file, so the first stage already stops with the key named.
    r = run_dvc(project, "repro", "world")
    assert r.returncode != 0
    assert "mix.filters.shp.min_ratio: must be >= 1.0, got 0" in r.stdout + r.stderr


def test_a_bad_world_param_names_the_checkout_that_restores_the_removed_outputs(tmp_path):
    """DVC removes a stage's outputs before the stage can validate its params: the one-line
    error says which `dvc checkout` brings them back, and it does, byte for byte."""
    project = make_project(tmp_path, SMALL_LOOP)
    assert run_dvc(project, "repro", "world").returncode == 0
    before = {p: p.read_bytes() for p in sorted((project / "data/world").rglob("*")) if p.is_file()}
    good = (project / "params.yaml").read_text()
    # Out of range, an unknown key, the wrong type: each named, each with the same remedy.
    for key, value in (("hh", -5), ("hhh", 10), ("hh", "many")):
        params = yaml.safe_load(good)
        params["world"]["sizes"][key] = value
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        r = run_dvc(project, "repro", "world")
        assert r.returncode != 0
        line = next(x for x in (r.stdout + r.stderr).splitlines() if x.startswith("error: "))
        assert f"world.sizes.{key}" in line and "`dvc checkout world` restores" in line, line
        assert "Traceback" not in r.stdout + r.stderr
        world = project / "data/world"
        assert not world.exists() or not any(world.iterdir())  # DVC removed them first
        assert run_dvc(project, "checkout", "world").returncode == 0
        after = {p: p.read_bytes() for p in sorted(world.rglob("*")) if p.is_file()}
        assert after == before


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    m = re.search(r"<!-- test-command -->\s*```(?:bash|sh)\n(.+?)\n```", readme, re.S)
    assert m, "README must mark its test command with <!-- test-command -->"
    assert m.group(1).strip() in ci
    assert subprocess.run(["bash", "-n", str(REPO / ".ci" / "run")]).returncode == 0
