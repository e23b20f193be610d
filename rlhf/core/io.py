"""Atomic file and directory writes: nothing already written is lost or half-written."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def is_main_process() -> bool:
    """False on the non-zero ranks of a multi-process launch (`accelerate launch` sets RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it onto `path`, else delete it.

    The temporary sits in a folder of this writer's own next to `path` (same filesystem, so
    the rename is atomic), ``<name>.tmp-<pid>-<random>/<name>``, which .gitignore's ``*.tmp-*``
    hides: two writers of one output never share a temporary, and only the writer's own is
    removed. Under a multi-process launch only rank 0 writes: the other ranks get a scratch
    path outside the project that is thrown away, so stage code needs no rank checks and ranks
    never race on one output.
    """
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """:func:`atomic_path` for several outputs that belong together (a table and its
    quarantine): one temporary each; on success all are renamed into place, and if a rename
    fails those already done are put back, so either every output changes or none does."""
    targets = [Path(p) for p in paths]
    if not is_main_process():
        with tempfile.TemporaryDirectory() as scratch:
            tmps = [Path(scratch) / str(i) / p.name for i, p in enumerate(targets)]
            for t in tmps:
                t.parent.mkdir()
            yield tmps
        return
    own: list[Path] = []
    try:
        for p in targets:
            p.parent.mkdir(parents=True, exist_ok=True)
            _clean_dead_writers(p)
            own.append(Path(tempfile.mkdtemp(prefix=f"{p.name}.tmp-{os.getpid()}-", dir=p.parent)))
        tmps = [d / p.name for d, p in zip(own, targets, strict=True)]
        yield tmps
        _commit(tmps, targets, own)
    finally:
        for d in own:
            _remove(d)


def _commit(tmps: list[Path], targets: list[Path], own: list[Path]) -> None:
    """Rename each temporary onto its target; on a failure undo the renames already made
    (the old outputs were kept in the writer's own folders until then)."""
    undo: list[tuple[Path, Path | None]] = []  # (target, its old content, None if it had none)
    try:
        for tmp, target, d in zip(tmps, targets, own, strict=True):
            old = d / f"{target.name}.old"
            if _is_dir(tmp) or _is_dir(target):
                # A directory cannot be replaced in one rename: move the old one aside first,
                # and again whenever another writer's lands in between (also where there was
                # none when this writer looked): the last rename wins.
                had = _is_dir(target)
                if had:
                    os.replace(target, old)
                undo.append((target, old if had else None))
                for i in range(8):
                    try:
                        os.replace(tmp, target)
                        break
                    except OSError:
                        if not _is_dir(target):
                            raise
                        os.replace(target, d / f"{target.name}.raced-{i}")
                else:
                    raise OSError(f"{target}: other writers kept replacing it")
                continue
            had = target.exists() or target.is_symlink()
            if had and len(targets) > 1:
                _keep(target, old)  # a hard link: the target never disappears meanwhile
            os.replace(tmp, target)
            undo.append((target, old if had and len(targets) > 1 else None))
    except BaseException:
        for target, old in reversed(undo):
            with contextlib.suppress(OSError):
                if old is None:
                    _remove(target)
                elif old.exists() or old.is_symlink():
                    if target.is_dir() and not target.is_symlink():
                        _remove(target)
                    os.replace(old, target)
        raise


def _is_dir(p: Path) -> bool:
    return p.is_dir() and not p.is_symlink()


def _keep(target: Path, old: Path) -> None:
    try:
        os.link(target, old, follow_symlinks=False)
    except OSError:  # a filesystem without hard links
        shutil.copy2(target, old, follow_symlinks=False)


def _clean_dead_writers(path: Path) -> None:
    """Remove the folders that killed writers of `path` left: only names of this module's own
    form (``<name>.tmp-<pid>-<random>``, a folder) whose process no longer runs, never a
    user's file that merely looks alike (``x.parquet.tmp-mybackup``) nor a live writer's."""
    form = re.compile(re.escape(path.name) + r"\.tmp-(\d+)-[a-z0-9_]{8}")
    for p in path.parent.glob(f"{glob.escape(path.name)}.tmp-*-*"):
        m = form.fullmatch(p.name)
        if m and p.is_dir() and not p.is_symlink() and not _running(int(m.group(1))):
            with contextlib.suppress(OSError):
                shutil.rmtree(p)


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process, or unknown: leave it
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def write_json(path: str | Path, data: Any) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


SKIPPED_FILE = "skipped.json"
"""In a model folder that a stage was asked not to train: the reason, in place of a model."""


def write_skipped(folder: str | Path, reason: str) -> Path:
    """Replace `folder` by one holding only :data:`SKIPPED_FILE` with `reason`: the stage's
    declared output exists, and whoever reads it is told why there is no model."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        (tmp / SKIPPED_FILE).write_text(json.dumps({"skipped": reason}, indent=2) + "\n")
    return Path(folder)


def skipped(folder: str | Path) -> str | None:
    """Why no model was trained into `folder` (:func:`write_skipped`), or None."""
    f = Path(folder) / SKIPPED_FILE
    return json.loads(f.read_text())["skipped"] if f.is_file() else None


def clean_stale_temporaries(folder: str | Path) -> int:
    """Remove every ``*.tmp-*`` under `folder`, whoever wrote it; return how many. Only for a
    folder the caller owns and no other writer uses at the time (e.g. a shard folder under
    .rlhf/); :func:`atomic_path` itself only ever removes provably dead writers' leftovers."""
    n = 0
    folder = Path(folder)
    if not folder.exists():
        return 0
    for p in sorted(folder.rglob("*.tmp-*"), reverse=True):
        _remove(p)
        n += 1
    return n
