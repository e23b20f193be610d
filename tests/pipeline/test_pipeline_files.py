"""dvc.yaml declares every piece of code a stage runs, so a code change re-runs the stage.

A stage whose logic changed but whose hash did not is the silent-staleness bug this catches:
each stage script's transitive imports of the project's own modules must be covered by its deps.
"""

import pytest
import yaml

from rlhf.core import paths
from rlhf.core.modules import closure
from rlhf.deps import rewrite

from ..conftest import REPO


def stages():
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, st in spec.items():
        body = st.get("do", st)
        yield name, body


@pytest.mark.parametrize("name, body", list(stages()), ids=[n for n, _ in stages()])
def test_every_stage_depends_on_all_the_code_it_runs(name, body):
    script = REPO / body["cmd"].split()[1]
    deps = [REPO / d for d in body.get("deps", []) if "${" not in d]
    missing = [
        str(f.relative_to(REPO))
        for f in sorted(closure(script))
        if not any(f == d or d in f.parents for d in deps)
    ]
    assert not missing, f"stage {name}: add to deps in dvc.yaml: {missing}"


def test_deps_rewrite_is_a_fixed_point_of_the_committed_dvc_yaml():
    text = (REPO / "dvc.yaml").read_text()
    assert rewrite(text) == text, "run `python -m rlhf.deps` to regenerate the code deps"


def test_deps_rewrite_adds_a_missing_import_and_drops_a_stale_one(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "rlhf").mkdir()
    (tmp_path / "rlhf" / "a.py").write_text("from rlhf import b\n")
    (tmp_path / "rlhf" / "b.py").write_text("x = 1\n")
    (tmp_path / "rlhf" / "old.py").write_text("")
    (tmp_path / "stages" / "s.py").write_text("from rlhf.a import x\n")
    text = "stages:\n  s:\n    cmd: python stages/s.py\n    deps:\n    - rlhf/old.py\n    - data/in\n    outs:\n    - data/out\n"
    new = rewrite(text, tmp_path)
    assert "rlhf/old.py" not in new
    assert "    - rlhf/a.py\n    - rlhf/b.py\n    - stages/s.py\n    - data/in\n" in new


def test_paths_module_agrees_with_dvc_yaml():
    text = (REPO / "dvc.yaml").read_text()
    for p in (
        paths.WORLD_DIR,
        paths.PROMPT_POOL,
        paths.DEMONSTRATIONS,
        paths.MIX_DIR,
        paths.PREFERENCES,
        paths.PROMPTS,
        paths.MIX_FILTER_REPORT,
        paths.MIX_TABLE1_JSON,
        paths.MIX_TABLE1_MD,
        paths.PROMPT_SPLITS_JSON,
        paths.BASE_MODEL,
        paths.SFT_MODEL,
        paths.REWARD_MODEL,
        paths.OFFLINE_DPO_MODEL,
        paths.HISTORY_START,
    ):
        assert p.as_posix() in text, p


def test_params_loading_imports_no_dataset_adapter():
    # config is a leaf: it once imported the format registries (and through them every
    # adapter), so all stages depended on formats.py and one adapter edit re-ran the pipeline.
    own = {f.relative_to(REPO).as_posix() for f in closure(REPO / "rlhf" / "core" / "config.py")}
    assert own <= {"rlhf/core/config.py", "rlhf/core/paths.py"}, own
    shared = {
        "rlhf/preferences/adapters.py",
        "rlhf/preferences/external.py",
        "rlhf/prompts/sources.py",
    }
    readers = {
        "rlhf/preferences/formats.py",
        "rlhf/preferences/mix.py",
        *(f.relative_to(REPO).as_posix() for f in (REPO / "rlhf/preferences/readers").glob("*.py")),
    }
    deps = {name: set(body.get("deps", [])) for name, body in stages()}
    # Only the stages that read preference or prompt sources re-run after an adapter edit, and
    # a dataset reader's edit re-runs the mix alone (prompts reads no preference format).
    assert {name for name, d in deps.items() if shared & d} == {"mix", "prompts"}
    assert {name for name, d in deps.items() if readers & d} == {"mix"}
    assert len(readers) > 10, readers


def test_only_the_report_runs_analytics_code():
    # The mix writes Table 1 through rlhf.preferences.table1, so an edit to the SQL views of
    # `rlhf sql` re-runs the report alone, not the mix and everything after it.
    users = {
        name
        for name, body in stages()
        if any(d.startswith("rlhf/analytics/") for d in body.get("deps", []))
    }
    assert users == {"report"}, users


def test_no_training_or_labelling_stage_runs_the_gold_judge():
    # The world simulates its annotators with the judge (plus noise and biases); after that only
    # evaluation may see it: a stage whose output feeds training would leak ground truth.
    allowed = {"world", "rm_eval", "evaluate", "gold"}
    judged = {name for name, body in stages() if "rlhf/world/judge.py" in body.get("deps", [])}
    # The one exception by design: the oracle control (score.ranker=annotator), whose stages
    # reach the judge only through the world's annotator, which they pass into the loop; the
    # loop's own modules never import it (test_layering), and by default no ranker is passed.
    oracle = {
        name
        for name, body in stages()
        if "rlhf/world/annotator.py" in body.get("deps", [])
        and (name.startswith("score") or name == "onpolicy_dpo")
    }
    assert {n for n in judged - oracle if not n.startswith("evaluate")} <= allowed, judged
    from rlhf.core.config import Params
    from rlhf.world.annotator import ranker

    assert ranker(Params()) is None


def test_the_readme_figure_and_the_architecture_tree_name_every_stage_and_module():
    import re

    readme = (REPO / "README.md").read_text()
    m = re.search(r"<!-- pipeline-figure -->\s*```mermaid\n(.+?)\n```", readme, re.S)
    assert m, "README must carry the pipeline figure"
    missing = [n for n, _ in stages() if not re.search(rf"\b{re.escape(n)}\b", m.group(1))]
    assert not missing, f"stages missing from the README figure: {missing}"
    # The module tree lives with the layers it describes.
    architecture = (REPO / "docs" / "architecture.md").read_text()
    tree = re.search(r"```text\nrlhf/\n(.+?)\n```", architecture, re.S).group(1)
    rows = {}  # package (or "" for the top level) -> module files named on its line
    pkg = ""
    for line in tree.splitlines():
        if m := re.match(r"\s+([a-z_]+)/\s", line):
            pkg = m.group(1)
        elif not re.match(r"\s{4,}\S", line):  # deeper indentation continues the package
            pkg = ""
        rows.setdefault(pkg, set()).update(re.findall(r"[a-z_0-9]+\.py", line))
    missing = [
        f.relative_to(REPO / "rlhf").as_posix()
        for f in (REPO / "rlhf").rglob("*.py")
        if f.name != "__init__.py"
        and f.name not in rows.get(f.parent.name if f.parent.name != "rlhf" else "", set())
    ]
    assert not missing, f"modules missing from the tree in docs/architecture.md: {missing}"
