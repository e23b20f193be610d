"""Sharded, resumable, data-parallel work for the stages that sample and score (issue: a crash
costs only the unfinished part, every device busy, the same output whatever the worker count).

A stage cuts its input into fixed shards (contiguous row ranges whose boundaries fall on the
backend's batch boundaries, so every batch, and so every per-batch sampling seed, is the one an
unsharded run uses). Each finished shard is written atomically with a manifest of its
fingerprint: its input rows, the stage's params, the model's bytes and the code that made it.
A re-run reuses a shard only when its manifest's fingerprint matches and its file's digest is
the recorded one; shards of other params or other models are never read.

Workers are the processes of a multi-process launch, through accelerate's process state:
`accelerate launch --multi_gpu --num_processes N` (one per GPU) or, on CPU, `torchrun
--standalone --nproc_per_node N` (gloo); a plain `python` start is one worker. Each worker takes every `count`-th unfinished
shard (a static split: deterministic, and no scheduler of our own); the main process then
concatenates the shards in input order, so the final table does not depend on how many workers
ran or how often the stage was interrupted. Every worker gets the whole result (a stage that
trains next, e.g. the on-policy control, needs it on every rank); the main process alone writes
the stage's output and then clears the shards. Shard files live under `.rlhf/shards/<stage>/`
(git-ignored, on a filesystem every worker sees), never under the stage's output path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Shard:
    """One unit of work: rows [start, stop) of one call's input."""

    index: int
    """Position of the shard in the input."""
    start: int
    """First input row, inclusive."""
    stop: int
    """Last input row, exclusive."""
    fingerprint: str
    """sha256 of everything the shard's output depends on."""

    @property
    def name(self) -> str:
        return f"shard-{self.index:05d}"


def cut(n: int, size: int, fingerprint: Callable[[int, int], str]) -> list[Shard]:
    """Shards of at most `size` rows covering n rows in order; `fingerprint(start, stop)` says
    what each one's output depends on."""
    return [
        Shard(i, a, min(a + size, n), fingerprint(a, min(a + size, n)))
        for i, a in enumerate(range(0, n, size))
    ]


def digest(*parts: Any) -> str:
    """sha256 of JSON-serialisable parts (sorted keys, so equal values give equal digests)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@cache
def tree_fingerprint(folder: str) -> str:
    """sha256 over a model folder's files (names and bytes): a shard made by other weights never
    matches. Read once per process per folder."""
    root = Path(folder)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + b"\0" + _file_sha256(p).encode())
    return h.hexdigest()


def code_fingerprint(modules: Iterable[str], repo: Path | None = None) -> str:
    """sha256 of the source files of the modules that produce a shard and of every project module
    they import, transitively (rlhf.core.modules: no hand-kept list to forget one in), and the
    versions of the libraries that compute it: other code never reuses a shard."""
    import importlib.metadata as md

    from rlhf.core.modules import REPO, closure, module_file

    repo = repo or REPO
    files: set[Path] = set()
    for name in modules:
        f = module_file(name, repo)
        if f is None:
            raise ValueError(f"{name}: not a module of this project")
        files |= closure(f, repo)
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(repo).as_posix().encode() + b"\0" + f.read_bytes())
    for lib in ("torch", "transformers", "pyarrow"):
        h.update(f"{lib}={md.version(lib)}".encode())
    return h.hexdigest()


class Workers:
    """This process's place among the stage's workers, from accelerate's process state: one
    worker under `python`, N under `accelerate launch --num_processes N`."""

    def __init__(self) -> None:
        import torch
        from accelerate import PartialState

        # cpu=True without a GPU: under `torchrun --nproc_per_node N` the workers then form a
        # gloo group (accelerate's own launcher needs mpirun for several CPU processes).
        self._state = PartialState(cpu=not torch.cuda.is_available())
        self.index = self._state.process_index
        self.count = self._state.num_processes
        self.device = self._state.device
        self.is_main = self._state.is_main_process

    def barrier(self) -> None:
        self._state.wait_for_everyone()


class ShardedRun:
    """The shards of one call (e.g. one seed's samples), under `<workdir>/<name>-<fingerprint>/`:
    other params give another folder, so nothing of theirs is ever read."""

    def __init__(self, name: str, shards: Sequence[Shard], workdir: str | Path):
        self.name = name
        self.shards = list(shards)
        run = digest([s.fingerprint for s in self.shards])[:16]
        self.dir = Path(workdir) / f"{name}-{run}"
        self.reused = 0

    def _files(self, s: Shard) -> tuple[Path, Path]:
        return self.dir / f"{s.name}.parquet", self.dir / f"{s.name}.json"

    def finished(self, s: Shard) -> bool:
        """A manifest with this shard's fingerprint, and the file it describes, digest intact."""
        table, manifest = self._files(s)
        try:
            m = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        return (
            m.get("version") == MANIFEST_VERSION
            and m.get("fingerprint") == s.fingerprint
            and table.is_file()
            and _file_sha256(table) == m.get("sha256")
        )

    def _write(self, s: Shard, table: pa.Table, seconds: float, worker: int) -> None:
        # Every worker writes its own shards (unlike stage outputs, which rank 0 alone writes):
        # temporary name, then rename; the manifest last, so a manifest means a whole shard.
        self.dir.mkdir(parents=True, exist_ok=True)
        path, manifest = self._files(s)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        meta = {
            "version": MANIFEST_VERSION,
            "run": self.name,
            "shard": s.name,
            "rows": [s.start, s.stop],
            "fingerprint": s.fingerprint,
            "sha256": _file_sha256(path),
            "seconds": round(seconds, 2),
            "worker": worker,
        }
        tmp = manifest.with_name(f"{manifest.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, manifest)

    def run(
        self, work: Callable[[Shard], pa.Table], workers: Workers | None = None
    ) -> list[pa.Table]:
        """Run this worker's part of the unfinished shards; return every shard's table in shard
        order (on every worker, once all have finished)."""
        workers = workers or Workers()
        done = [s for s in self.shards if self.finished(s)]
        self.reused = len(done)
        names = {s.name for s in done}
        todo = [s for s in self.shards if s.name not in names]
        mine = todo[workers.index :: workers.count]
        if workers.is_main and done:
            print(f"{self.name}: reusing {len(done)} of {len(self.shards)} finished shards")
        for s in tqdm(mine, desc=f"{self.name} shards (worker {workers.index})", unit="shard"):
            t = time.perf_counter()
            self._write(s, work(s), time.perf_counter() - t, workers.index)
        workers.barrier()
        missing = [s.name for s in self.shards if not self.finished(s)]
        if missing:
            raise RuntimeError(f"{self.name}: shards no worker finished: {missing[:5]}")
        tables = [pq.read_table(self._files(s)[0]) for s in self.shards]
        workers.barrier()  # every worker has read them before anyone may clear them
        return tables


def length_order(sizes: list[int]) -> list[int]:
    """Row indices by size, ties in input order. A stage that batches rows of similar size
    sorts its WHOLE input this way and then cuts shards and batches from the sorted rows, so
    each batch has little padding and still the same rows for any shard size or worker count
    (sorting inside each shard would make the batches depend on where the shards cut)."""
    return sorted(range(len(sizes)), key=lambda i: (sizes[i], i))


def map_shards(
    name: str,
    workdir: str | Path,
    n: int,
    size: int,
    *,
    params: Any,
    model_dir: str | Path,
    code: Iterable[str],
    rows: Callable[[int, int], Any],
    load: Callable[[Workers], Any],
    work: Callable[[Any, Shard], pa.Table],
) -> list[pa.Table]:
    """The one way a stage runs model work in shards: n input rows cut into shards of `size`,
    each fingerprinted by `params`, the bytes of `model_dir`, the source of the `code` modules
    and its `rows(start, stop)`; `load(workers)` builds the model once per worker, on its first
    shard (a worker with none loads nothing; a model with a `close()`, e.g. a serving engine,
    is closed at the end or on any failure), and `work(model, shard)` makes a shard's table.
    Returns every shard's table in input order, on every worker (see :class:`ShardedRun`)."""
    fixed = digest(params, tree_fingerprint(str(model_dir)), code_fingerprint(code))
    shards = cut(n, size, lambda a, b: digest(fixed, a, b, rows(a, b)))
    workers = Workers()
    model: list[Any] = []

    def one(s: Shard) -> pa.Table:
        if not model:
            model.append(load(workers))
        return work(model[0], s)

    try:
        return ShardedRun(name, shards, workdir).run(one, workers)
    finally:
        # A model that holds a process (a serving engine) lets it go, on success or failure.
        if model and hasattr(model[0], "close"):
            model[0].close()


def clear(workdir: str | Path) -> None:
    """Remove a stage's shards once its output is written (they are only its cache). Only the
    main process clears: under a multi-process launch the others return first."""
    from rlhf.core.io import is_main_process

    if is_main_process():
        shutil.rmtree(workdir, ignore_errors=True)
