"""Atomic file and directory writes: nothing already written is lost or half-written."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def is_main_process() -> bool:
    """False on the non-zero ranks of a multi-process launch (`accelerate launch` sets RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it onto `path`, else delete it.

    The temporary name sits in the same folder (same filesystem, so the rename is atomic)
    and matches ``*.tmp-*``, which .gitignore hides. Under a multi-process launch only rank 0
    writes: the other ranks get a scratch path outside the project that is thrown away, so
    stage code needs no rank checks and ranks never race on one output.
    """
    path = Path(path)
    if not is_main_process():
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            yield Path(scratch) / path.name
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    # Leftovers of an earlier writer of this same output that was killed mid-write.
    for stale in path.parent.glob(f"{path.name}.tmp-*"):
        _remove(stale)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            # A directory cannot be replaced in one rename: move the old one aside first.
            old = path.with_name(f"{path.name}.tmp-old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


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


def clean_stale_temporaries(folder: str | Path) -> int:
    """Remove leftovers of killed writers (``*.tmp-*``) under `folder`; return how many."""
    n = 0
    folder = Path(folder)
    if not folder.exists():
        return 0
    for p in sorted(folder.rglob("*.tmp-*"), reverse=True):
        _remove(p)
        n += 1
    return n
