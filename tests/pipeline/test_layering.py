"""Imports only go down the pipeline's layers (docs/architecture.md), and no module that
trains, labels or selects pairs can reach the gold judge."""

import ast

from rlhf.core.modules import closure

from ..conftest import REPO

# Lowest first: the subpackages of rlhf/ (docs/architecture.md); a module may import its own
# layer and those below it. Top-level modules (cli, sql, share, profiles, deps, reproduce,
# docs_pages) are the tools on top.
LAYERS = [
    ("core", "core"),
    ("world", "world"),
    ("preference data", "preferences prompts"),
    ("models", "models"),
    ("online loop", "online"),
    ("evaluation", "evaluation"),
    ("analytics", "analytics"),
    ("tools", "cli sql share profiles deps reproduce docs_pages"),
]
LAYER = {m: i for i, (_, names) in enumerate(LAYERS) for m in names.split()}


def layer_of(module: str) -> int:
    """rlhf.world.judge -> the world layer; rlhf.preferences.mix -> preference data."""
    return LAYER[module.removeprefix("rlhf.").split(".")[0]]


def imports(path) -> set[str]:
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("rlhf"):
            out |= {f"rlhf.{a.name}" for a in n.names} if n.module == "rlhf" else {n.module}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith("rlhf")}
    return out


def modules():
    for f in sorted((REPO / "rlhf").rglob("*.py")):
        if f.name != "__init__.py":
            yield ".".join(f.relative_to(REPO).with_suffix("").parts), f


def test_every_module_has_a_layer():
    assert not [m for m, _ in modules() if m.removeprefix("rlhf.").split(".")[0] not in LAYER]


def test_imports_only_go_down():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
        for m, f in modules()
        for d in imports(f)
        if layer_of(d) > layer_of(m)
    ]
    assert not upward, upward


def test_nothing_that_trains_or_labels_reaches_the_gold_judge():
    judge = REPO / "rlhf" / "world" / "judge.py"
    training = [
        m
        for m, f in modules()
        if LAYERS[layer_of(m)][0] in ("preference data", "models", "online loop")
        and judge in closure(f)
    ]
    assert not training, training


def import_cycles(repo) -> list[list[str]]:
    """Every cycle of the project's import graph (imports anywhere in a module, functions too)."""
    from rlhf.core.modules import imports as file_imports

    files = sorted((repo / "rlhf").rglob("*.py"))
    graph = {f: sorted(d for d in file_imports(f, repo) if d != f) for f in files}
    state: dict = {}
    found: list[list[str]] = []

    def visit(f, path):
        state[f] = "open"
        for d in graph.get(f, []):
            if state.get(d) == "open":
                found.append([p.relative_to(repo).as_posix() for p in path[path.index(d) :] + [d]])
            elif d not in state:
                visit(d, [*path, d])
        state[f] = "done"

    for f in files:
        if f not in state:
            visit(f, [f])
    return found


def test_no_import_circle(tmp_path):
    assert not import_cycles(REPO)
    # The check finds a circle where there is one: a imports b, b imports a.
    (tmp_path / "rlhf").mkdir()
    (tmp_path / "rlhf" / "a.py").write_text("from rlhf import b\n")
    (tmp_path / "rlhf" / "b.py").write_text("def f():\n    from rlhf.a import x\n")
    assert import_cycles(tmp_path) == [["rlhf/a.py", "rlhf/b.py", "rlhf/a.py"]]
