"""dvc.yaml declares every piece of code a stage runs, so a code change re-runs the stage.

A stage whose logic changed but whose hash did not is the silent-staleness bug this catches:
each stage script's transitive imports of the project's own modules must be covered by its deps.
"""

import ast
from pathlib import Path

import pytest
import yaml

from rlhf import paths

from .conftest import REPO


def _module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[Path]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n == "_common":
                found.add(REPO / "stages" / "_common.py")
            elif n.split(".")[0] == "rlhf" and (f := _module_file(n)):
                found.add(f)
    return found


def closure(script: Path) -> set[Path]:
    todo, seen = [script], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(_imports(f))
    # Empty package markers carry no logic.
    return {f for f in seen if not (f.name == "__init__.py" and not f.read_text().strip())}


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
