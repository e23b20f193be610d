"""Sharing results through DVC remotes: which outputs to push or pull for a need, and a re-hash
of the workspace against dvc.lock.

DVC does the transfers (`dvc push` / `dvc pull` with the targets printed here); this module only
knows which outputs make up "the datasets", "the models" or "iteration K", so that a user need
not know the DAG. `verify` exists because DVC trusts a file's size and modification time: a
byte flipped in place (bit rot, an editor, `cp -p` of another file) goes unnoticed by
`dvc status` and `dvc repro`, and `dvc push` would upload it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["datasets", "models", "all"]


@dataclass(frozen=True)
class TrackedOut:
    """One output recorded in dvc.lock."""

    stage: str
    """The stage that writes it (`generate@iter_1` for a foreach entry)."""
    path: str
    """Path relative to the project root."""
    md5: str | None
    """The hash dvc.lock records (`<md5>.dir` for a folder); None if the stage never ran."""
    cached: bool
    """Whether DVC caches it (and so pushes it); uncached outputs (metrics) live in git."""


def tracked_outputs(root: str | Path = ".") -> list[TrackedOut]:
    """Every output of every stage, as dvc.yaml declares it and dvc.lock records it."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            TrackedOut(
                o.stage.addressing,
                o.def_path,
                o.hash_info.value if o.hash_info else None,
                bool(o.use_cache),
            )
            for o in repo.index.outs
        ]


def targets(
    outs: list[TrackedOut], kind: Kind | None = None, iteration: str | None = None
) -> list[str]:
    """DVC targets (output paths) for `dvc push` / `dvc pull`: the cached outputs that are
    datasets (every table, under data/), models (under models/), everything, or one iteration's
    tables and models (its generate, score, pairs, dpo and evaluate stages). Outputs of stages
    that never ran are left out."""
    if (kind is None) == (iteration is None):
        raise ValueError("give exactly one of kind and iteration")
    # Only what has been produced: an output dvc.lock has no hash for cannot be pushed.
    cached = [o for o in outs if o.cached and o.md5]
    if iteration is not None:
        chosen = [o for o in cached if o.stage.endswith(f"@{iteration}")]
        if not chosen:
            known = sorted({o.stage.split("@", 1)[1] for o in outs if "@" in o.stage})
            raise ValueError(f"no iteration {iteration!r}; known: {', '.join(known) or 'none'}")
    elif kind == "datasets":
        chosen = [o for o in cached if not o.path.startswith("models/")]
    elif kind == "models":
        chosen = [o for o in cached if o.path.startswith("models/")]
    else:
        chosen = cached
    return sorted(o.path for o in chosen)


@dataclass(frozen=True)
class Mismatch:
    path: str
    expected: str
    found: str
    """The hash of the workspace copy, or `missing`."""
    files: tuple[str, ...] = ()
    """For a folder whose listing is in the local DVC cache: the files in it that differ, are
    missing or are extra."""


def content_md5(path: Path) -> str:
    """DVC's md5 of a file, or of a folder (`<md5>.dir` of its sorted listing), computed from
    the bytes, never from DVC's state database of size and modification time."""
    from dvc_data.hashfile.hash import file_md5

    if not path.is_dir():
        return file_md5(str(path))
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in filenames:
            f = Path(dirpath) / name
            parts = f.relative_to(path).parts
            tree.add(parts, Meta(size=f.stat().st_size), HashInfo("md5", file_md5(str(f))))
    tree.digest()
    return tree.hash_info.value


def verify(outs: list[TrackedOut], root: str | Path = ".") -> tuple[int, list[Mismatch]]:
    """Re-hash every output dvc.lock records; returns (outputs checked, mismatches)."""
    root = Path(root)
    bad, checked = [], 0
    for o in outs:
        if o.md5 is None:
            continue
        checked += 1
        p = root / o.path
        found = content_md5(p) if p.exists() else "missing"
        if found != o.md5:
            files = _differing_files(root, p, o.md5) if p.is_dir() else ()
            bad.append(Mismatch(o.path, o.md5, found, files))
    return checked, bad


def _differing_files(root: Path, folder: Path, md5: str) -> tuple[str, ...]:
    import json

    from dvc_data.hashfile.hash import file_md5

    listing = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not listing.exists():
        return ()
    want = {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}
    have = {f.relative_to(folder).as_posix(): f for f in sorted(folder.rglob("*")) if f.is_file()}
    return tuple(
        sorted(
            r
            for r in want.keys() | have.keys()
            if r not in want or r not in have or file_md5(str(have[r])) != want[r]
        )
    )
