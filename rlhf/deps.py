"""Code dependencies of the pipeline's stages: each stage script's transitive imports of the
project's own modules, which dvc.yaml must list as deps so that a code change re-runs the stage.

``python -m rlhf.deps`` rewrites the code entries (``rlhf/...``, ``stages/...``) of every stage's
deps in dvc.yaml from the imports, leaving data deps, comments and order of everything else alone;
``--check`` only reports what is missing or extra (exit 1 if anything is).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from rlhf.core.modules import REPO, closure

_CODE = re.compile(r"^(\s*)- (rlhf|stages)/\S+\.py\s*$")


def rewrite(text: str, repo: Path = REPO) -> str:
    """dvc.yaml text with each stage's code deps replaced by its script's import closure."""
    out: list[str] = []
    lines = text.split("\n")
    script: Path | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^\s*cmd: (?:python|\$\{compute\.\w+\}) (stages/\S+\.py)", line)
        if m:
            script = repo / m.group(1)
        if re.match(r"^\s*deps:\s*$", line) and script is not None:
            out.append(line)
            i += 1
            indent = None
            data: list[str] = []
            while i < len(lines) and re.match(r"^\s*- ", lines[i]):
                cm = _CODE.match(lines[i])
                indent = indent or re.match(r"^(\s*)", lines[i]).group(1)
                if not cm:
                    data.append(lines[i])
                i += 1
            code = sorted(f.relative_to(repo).as_posix() for f in closure(script, repo))
            out += [f"{indent}- {c}" for c in code] + data
            script = None
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dvc-yaml", default=str(REPO / "dvc.yaml"))
    p.add_argument("--check", action="store_true", help="report differences, do not write")
    args = p.parse_args()
    path = Path(args.dvc_yaml)
    old = path.read_text()
    new = rewrite(old)
    if args.check:
        if new != old:
            sys.exit(f"{path}: code deps are out of date; run `python -m rlhf.deps`")
        print(f"{path}: code deps up to date")
        return
    if new != old:
        from rlhf.core.io import write_text

        write_text(path, new)
        print(f"{path}: code deps rewritten")
    else:
        print(f"{path}: code deps already up to date")


if __name__ == "__main__":
    main()
