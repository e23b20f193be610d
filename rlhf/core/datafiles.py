"""Users' data files in and out: rows with their line numbers, outputs that never destroy data.

Local files are read here, not through `datasets.load_dataset`, for two reasons measured on
real files: its cache (outside the project) is keyed by size and modification time, so a file
edited in place with `cp -p` / `rsync -a` gave back the old rows; and it reports a broken JSON
line as a long traceback with a 0-based row. Reading JSON lines with the standard library keeps
each row's 1-based line, so every error names file, line and field; Parquet goes through
pyarrow. Hub ids (opt-in) still go through `datasets`.

Outputs: `.parquet`, `.jsonl` or `.jsonl.gz`, chosen by the suffix; an output that is a
directory, the input itself, or has another suffix is refused before anything is read or
written; writes are atomic (a temporary sibling, then a rename).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rlhf.core.io import atomic_paths

OUTPUT_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz")
INPUT_SUFFIXES = (".parquet", ".jsonl", ".json", ".parquet.gz", ".jsonl.gz", ".json.gz")


class DataError(Exception):
    """The input cannot be read at all (exit code 3); one line naming the file and place."""


class UsageError(Exception):
    """The command is refused before anything is read or written (exit code 2)."""


class WriteError(Exception):
    """An output cannot be written (exit code 4): found before the input is read where it can
    be (a read-only folder, a parent that is a file), else when writing (a full disk); either
    way every existing output is as it was."""


@dataclass(frozen=True)
class BadRow:
    """A line of a JSON-lines file that is not a JSON object; quarantined as `invalid_json`."""

    error: str
    text: str


class Rows(list):
    """A file's rows (dicts, or :class:`BadRow` for lines that do not parse), in file order,
    with where each came from, so messages can say `uf.jsonl line 7`."""

    def __init__(self, rows, origin: str = "", lines: list[int] | None = None):
        super().__init__(rows)
        self.origin = origin
        self.lines = lines

    def where(self, i: int) -> str:
        """`<file> line N` (JSON lines) or `<file> row N` (1-based) of row `i`."""
        if self.lines is not None and 0 <= i < len(self.lines):
            return f"{self.origin} line {self.lines[i]}"
        return f"{self.origin} row {i + 1}"


def where(rows: list, i: int) -> str:
    return rows.where(i) if isinstance(rows, Rows) else f"row {i + 1}"


def _suffix(path: Path, known: tuple[str, ...]) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(known, key=len, reverse=True) if name.endswith(s)), None)


def _open_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: truncated or corrupt gzip file ({e})") from None
    return data


def read_local(path: str | Path) -> Rows:
    """Every row of a local .jsonl / .json / .parquet file (optionally .gz). A JSON line that
    does not parse to an object becomes a :class:`BadRow` in its place (the rest is read);
    a file that cannot be read at all raises :class:`DataError`."""
    path = Path(path)
    kind = _suffix(path, INPUT_SUFFIXES)
    if kind is None:
        raise UsageError(
            f"{path}: unsupported file type (use .jsonl, .json or .parquet, optionally .gz)"
        )
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a data file")
    data = _open_bytes(path)
    if kind.startswith(".parquet"):
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable Parquet file ({e})") from None
        rows = Rows(table.to_pylist(), str(path))
    elif data.lstrip()[:1] == b"[":  # a .json file holding one array of objects
        try:
            items = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}: not valid JSON ({e})") from None
        rows = Rows(
            [
                x if isinstance(x, dict) else BadRow("not a JSON object", json.dumps(x))
                for x in items
            ],
            str(path),
        )
    else:
        rows, lines = [], []
        for n, raw in enumerate(data.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
                if not isinstance(obj, dict):
                    obj = BadRow(f"not a JSON object but {type(obj).__name__}", raw.decode())
            except UnicodeDecodeError as e:
                obj = BadRow(f"not UTF-8 ({e.reason} at byte {e.start})", repr(raw[:200]))
            except json.JSONDecodeError as e:
                obj = BadRow(
                    f"invalid JSON: {e.msg} at column {e.colno}", raw.decode(errors="replace")
                )
            rows.append(obj)
            lines.append(n)
        rows = Rows(rows, str(path), lines)
    if not rows:
        raise DataError(f"{path}: no rows (the file is empty)")
    return rows


def load_rows(
    spec: str | Path, split: str = "train", revision: str = "", max_rows: int = 0
) -> Rows:
    """Rows of a local file (see :func:`read_local`), or of a hub dataset id when
    RLHF_ALLOW_HUB=1 (never downloaded otherwise); the first `max_rows` when > 0, so row
    numbers stay the file's own."""
    p = Path(spec)
    if p.exists():
        rows = read_local(p)
    elif os.environ.get("RLHF_ALLOW_HUB", "0") != "1":
        raise FileNotFoundError(
            f"{spec}: no such file; to read it as a hub dataset id set RLHF_ALLOW_HUB=1 "
            "(nothing is downloaded by default)"
        )
    else:
        import datasets

        ds = datasets.load_dataset(str(spec), split=split, revision=revision or None)
        if max_rows and len(ds) > max_rows:
            ds = ds.select(range(max_rows))
        return Rows(ds.to_list(), str(spec))
    if max_rows and len(rows) > max_rows:
        rows = Rows(rows[:max_rows], rows.origin, rows.lines[:max_rows] if rows.lines else None)
    return rows


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_outputs(inputs: list[str | Path], outputs: list[str | Path]) -> None:
    """Refuse (:class:`UsageError`) outputs that would destroy data or mislabel it: an existing
    directory, an input file (links resolved), two outputs on one path, or a suffix other
    than .parquet / .jsonl / .jsonl.gz."""
    outs = [Path(o) for o in outputs]
    for o in outs:
        if o.is_dir():
            raise UsageError(f"{o}: is a directory; give a file path (nothing was written)")
        if _suffix(o, OUTPUT_SUFFIXES) is None:
            raise UsageError(
                f"{o}: output must end in {', '.join(OUTPUT_SUFFIXES)} (the suffix decides "
                "what is written; nothing was written)"
            )
        for i in inputs:
            if Path(i).exists() and _same_file(Path(i), o):
                raise UsageError(
                    f"{o}: is the input file; write to another path (nothing was written)"
                )
    for a in range(len(outs)):
        for b in range(a + 1, len(outs)):
            if _same_file(outs[a], outs[b]):
                raise UsageError(f"{outs[a]}: given for two outputs (nothing was written)")
    for o in outs:
        check_writable(o)


def check_writable(output: str | Path) -> None:
    """Raise :class:`WriteError` unless `output` can be created: its nearest existing parent
    is a folder in which a file can be made (tried, not guessed from permission bits, which
    a read-only mount or root do not follow)."""
    o = Path(output)
    parent = o.parent
    while not parent.exists() and not parent.is_symlink() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise WriteError(f"{o}: {parent} is not a folder; nothing was read or written")
    try:
        probe = tempfile.mkdtemp(prefix=f"{o.name}.tmp-{os.getpid()}-", dir=parent)
    except OSError as e:
        raise WriteError(
            f"{o}: cannot write in {parent} ({e.strerror}); nothing was read or written"
        ) from None
    os.rmdir(probe)


def sibling(output: str | Path, tag: str) -> Path:
    """`out.parquet`, `out.jsonl.gz` -> `out.<tag>.parquet` (e.g. the quarantine table)."""
    p = Path(output)
    suffix = _suffix(p, OUTPUT_SUFFIXES) or p.suffix
    return p.with_name(p.name[: len(p.name) - len(suffix)] + f".{tag}.parquet")


def write_output(table: pa.Table, path: str | Path) -> Path:
    """Write `table` atomically as Parquet or JSON lines (optionally gzipped), by suffix.
    JSON lines keep nested lists and structs as JSON arrays and objects, nulls as null."""
    return write_outputs([(table, path)])[0]


def write_outputs(items: list[tuple[pa.Table, str | Path]]) -> list[Path]:
    """:func:`write_output` for outputs that belong together (a table and its quarantine):
    each written under a temporary name, then all renamed; if anything fails, none changes
    (:class:`WriteError`, naming the path and why)."""
    paths = [Path(p) for _, p in items]
    current = paths[0] if paths else None
    try:
        with atomic_paths(*paths) as tmps:
            for (table, path), tmp in zip(items, tmps, strict=True):
                current = Path(path)
                _write_one(table, tmp, _suffix(current, OUTPUT_SUFFIXES))
            current = None  # the renames: any failure there leaves every output as it was
    except OSError as e:
        what = f"{current}: cannot write" if current else "cannot replace the outputs"
        names = ", ".join(str(p) for p in paths)
        raise WriteError(f"{what} ({e.strerror or e}); unchanged: {names}") from None
    return paths


def _write_one(table: pa.Table, tmp: Path, kind: str | None) -> None:
    if kind == ".parquet":
        pq.write_table(table, tmp, compression="zstd")
        return
    # pyarrow has no JSON writer; one json.dumps per row keeps text byte for byte.
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table.to_pylist())
    data = body.encode()
    if kind == ".jsonl.gz":
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:  # mtime 0: same bytes
            gz.write(data)
        data = buf.getvalue()
    tmp.write_bytes(data)
