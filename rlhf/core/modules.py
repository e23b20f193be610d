"""The project's own import graph, read from the source (no import runs): which files a module
needs. `dvc.yaml`'s code deps (rlhf.deps) and the code fingerprint of a shard
(rlhf.core.shards) both come from it, so neither is a hand-kept list."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_file(name: str, repo: Path) -> Path | None:
    base = repo / Path(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def imports(path: Path, repo: Path = REPO) -> set[Path]:
    """Project files imported by `path` (stage helpers as `_common`, library as `rlhf.*`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            if n == "_common":
                found.add(repo / "stages" / "_common.py")
            elif n.split(".")[0] == "rlhf" and (f := module_file(n, repo)):
                found.add(f)
    return found


def closure(script: Path, repo: Path = REPO) -> set[Path]:
    """`script` and everything it transitively imports from the project."""
    todo, seen = [script], set()
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(imports(f, repo))
    # Empty package markers carry no logic.
    return {f for f in seen if not (f.name == "__init__.py" and not f.read_text().strip())}
