"""Sharing results through DVC remotes: which outputs to push or pull for a need, and a re-hash
of the workspace against dvc.lock.

DVC does the transfers (`dvc push` / `dvc pull` with the targets printed here); this module only
knows which outputs make up "the datasets", "the models" or "iteration K", so that a user need
not know the DAG. `verify` exists because DVC trusts a file's size and modification time: a
byte flipped in place (bit rot, an editor, `cp -p` of another file) goes unnoticed by
`dvc status` and `dvc repro`, and `dvc push` would upload it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Kind = Literal["datasets", "models", "all"]


class ShareError(Exception):
    """The project cannot be read as a DVC project (not one, or a broken dvc.yaml / dvc.lock);
    the message is one line."""


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
    in_cache: bool = False
    """Whether the local DVC cache holds it whole (a folder: its listing and every file in it),
    so that `dvc push` can send it and `dvc checkout` restore it."""


def tracked_outputs(root: str | Path = ".") -> list[TrackedOut]:
    """Every output of every stage, as dvc.yaml declares it and dvc.lock records it."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo

    try:
        with Repo(str(root)) as repo:
            odb = repo.cache.local
            outs = []
            for o in repo.index.outs:
                md5 = o.hash_info.value if o.hash_info else None
                cached = bool(o.use_cache)
                outs.append(
                    TrackedOut(
                        o.stage.name,
                        o.def_path,
                        md5,
                        cached,
                        bool(cached and md5 and odb is not None and _in_cache(odb, md5)),
                    )
                )
            return outs
    except NotDvcRepoError:
        raise ShareError(
            f"{Path(root).resolve()} is not in a DVC project (no .dvc folder there or above): "
            "run it in the project's clone, or pass --root"
        ) from None
    except DvcException as e:
        raise ShareError(f"DVC cannot read the project: {' '.join(str(e).split())}") from None


def _in_cache(odb, md5: str) -> bool:
    """Whether the object `md5` is in the local cache `odb`; for `<md5>.dir`, its listing and
    every file it lists."""
    path = odb.oid_to_path(md5)
    if not os.path.isfile(path):
        return False
    if not md5.endswith(".dir"):
        return True
    try:
        listing = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return all(os.path.isfile(odb.oid_to_path(e["md5"])) for e in listing)


def split_cached(outs: list[TrackedOut], picked: list[str]) -> tuple[list[str], list[TrackedOut]]:
    """The picked output paths the local cache holds whole, and the outputs it does not."""
    by_path = {o.path: o for o in outs}
    have = [p for p in picked if by_path[p].in_cache]
    lack = [by_path[p] for p in picked if not by_path[p].in_cache]
    return have, lack


def repair_command(o: TrackedOut) -> str:
    """The shell command that restores output `o` to the bytes dvc.lock records. DVC trusts
    size and mtime, so `dvc checkout --force` leaves a changed byte in place: the copy is
    removed first."""
    rm = f"rm -rf {o.path}"
    if not o.cached:  # git-tracked (cache: false)
        return f"git checkout -- {o.path}   (or: dvc repro --force {o.stage})"
    if o.in_cache:
        return f"{rm} && dvc checkout {o.path}"
    return f"{rm} && dvc pull {o.path}   (not in the local cache; or: {rm} && dvc repro {o.stage})"


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

    @property
    def missing(self) -> bool:
        return self.found == "missing"


def _file_md5s(folder: Path) -> dict[str, str]:
    """relpath -> DVC md5 of every file under `folder`, from the bytes."""
    from dvc_data.hashfile.hash import file_md5

    return {
        f.relative_to(folder).as_posix(): file_md5(str(f))
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _dir_md5(files: dict[str, str], folder: Path) -> str:
    """DVC's `<md5>.dir` of a folder from its files' md5s (the hash of its sorted listing)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    tree = Tree()
    for rel, md5 in files.items():
        tree.add(
            tuple(rel.split("/")), Meta(size=(folder / rel).stat().st_size), HashInfo("md5", md5)
        )
    tree.digest()
    return tree.hash_info.value


def content_md5(path: Path) -> str:
    """DVC's md5 of a file, or of a folder (`<md5>.dir` of its sorted listing), computed from
    the bytes, never from DVC's state database of size and modification time."""
    from dvc_data.hashfile.hash import file_md5

    return _dir_md5(_file_md5s(path), path) if path.is_dir() else file_md5(str(path))


def verify(outs: list[TrackedOut], root: str | Path = ".") -> tuple[int, list[Mismatch]]:
    """Re-hash every output dvc.lock records; returns (outputs checked, mismatches)."""
    root = Path(root)
    bad, checked = [], 0
    for o in outs:
        if o.md5 is None:
            continue
        checked += 1
        p = root / o.path
        if not p.exists():
            bad.append(Mismatch(o.path, o.md5, "missing"))
            continue
        # A folder's files are hashed once: for its hash and, if that differs, to name them.
        have = _file_md5s(p) if p.is_dir() else None
        found = _dir_md5(have, p) if have is not None else content_md5(p)
        if found != o.md5:
            files = _differing_files(root, have, o.md5) if have is not None else ()
            bad.append(Mismatch(o.path, o.md5, found, files))
    return checked, bad


def _differing_files(root: Path, have: dict[str, str], md5: str) -> tuple[str, ...]:
    """The files of a folder (relpath -> md5 in the workspace) that differ from, or are
    missing in or extra to, the listing `md5` names in the local DVC cache; () without it."""
    listing = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if not listing.exists():
        return ()
    want = {e["relpath"]: e["md5"] for e in json.loads(listing.read_text())}
    return tuple(sorted(r for r in want.keys() | have.keys() if want.get(r) != have.get(r)))
