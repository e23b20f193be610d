"""`rlhf sql` guards: a read-only connection by default, and one-line errors with a remedy.

Read-only: after the views are registered, DuckDB's external access is switched off except
for the project's `data/` and `reports/` (what the views read), the configuration is locked,
and statements that write files or fetch code (COPY, EXPORT, ATTACH, INSTALL/LOAD, ...) are
refused before they run (a SET is refused by the locked configuration). `--allow-writes` keeps DuckDB's default connection (it can write and
read any file and install extensions over the network).

No stage imports this module.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import duckdb
import yaml

READABLE = ("data", "reports")
"""The project folders a read-only connection may read (every view's files are in them)."""

# Statements that write files, attach databases or load code: refused without --allow-writes.
_WRITES = {
    "COPY": "COPY writes (or reads into) files",
    "COPY_DATABASE": "COPY FROM DATABASE writes a database",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens or creates a database file",
    "DETACH": "DETACH changes the attached databases",
    "LOAD": "INSTALL / LOAD fetch and run extension code",
    "EXTENSION": "extension statements load code",
}


class SqlRefused(Exception):
    """A statement a read-only `rlhf sql` will not run; the message is one line."""


def restrict(con: duckdb.DuckDBPyConnection, root: str | Path) -> list[str]:
    """Switch `con` to read-only on the project: reads only under `<root>/data` and
    `<root>/reports`, no writes, no extensions, settings locked. Returns the readable folders."""
    root = Path(root).resolve()
    dirs = [str(root / d) + "/" for d in READABLE]
    listed = ", ".join("'" + d.replace("'", "''") + "'" for d in dirs)
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute(f"SET allowed_directories = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return dirs


def check(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise SqlRefused for a statement of `query` that a read-only session does not run."""
    for st in con.extract_statements(query):
        why = _WRITES.get(st.type.name)
        if why:
            first = st.query.strip().split(None, 1)[0].upper() if st.query.strip() else ""
            raise SqlRefused(
                f"rlhf sql is read-only: {first or st.type.name} refused ({why}); "
                "rerun with --allow-writes to lift this, or write results with "
                "`--format csv > FILE`"
            )


_MISSING = re.compile(r"Table with name (\"?)([^\s\"!]+)\1 does not exist")


def _outputs(dvc_yaml: Path) -> list[tuple[str, str, bool]]:
    """(stage, output path pattern, cached) for every out/metric/plot of dvc.yaml; a foreach
    stage's `${...}` become `*`."""
    doc = yaml.safe_load(dvc_yaml.read_text()) or {}
    found = []
    for stage, body in (doc.get("stages") or {}).items():
        body = body.get("do", body) if isinstance(body, dict) else {}
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                path, opts = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                cached = (opts or {}).get("cache", True) is not False
                found.append((stage, re.sub(r"\$\{[^}]*\}", "*", path), cached))
    return found


def makers(root: str | Path, pattern: str) -> tuple[list[str], bool]:
    """The stages whose outputs a view's file pattern (relative to the project) reads, in
    dvc.yaml order, and whether all of them are cached by DVC (so `rlhf share pull` brings
    them); ([], False) without a dvc.yaml."""
    f = Path(root) / "dvc.yaml"
    if not f.exists():
        f = Path(__file__).resolve().parents[1] / "dvc.yaml"
        if not f.exists():
            return [], False
    stages: list[str] = []
    cached = True
    for stage, out, c in _outputs(f):
        out = out.rstrip("/")
        if (
            fnmatch.fnmatch(pattern, out)
            or fnmatch.fnmatch(out, pattern)
            or pattern.startswith(out + "/")
        ):
            if stage not in stages:
                stages.append(stage)
            cached = cached and c
    return stages, cached and bool(stages)


def view_sources() -> dict[str, str]:
    """Every view `rlhf sql` can make -> the files it reads, relative to the project."""
    from rlhf.analytics import views
    from rlhf.core import paths

    src = {k: str(Path(v)) for k, v in views._parquet_views(Path()).items()}
    src["metrics"] = str(paths.REPORTS_DIR / "eval" / "*.json")
    src["rm_eval"] = str(paths.RM_EVAL)
    return src


def explain(e: duckdb.Error, root: str | Path, views: dict[str, str]) -> str:
    """One line for a DuckDB error: for a table the pipeline has not made yet, which stage
    makes it and how to get it; for another missing table, the views there are."""
    msg = str(e)
    m = _MISSING.search(msg)
    if m:
        name = m.group(2).split(".")[-1]
        src = view_sources().get(name)
        if src is not None and name not in views:
            stages, cached = makers(root, src)
            if not stages:
                return f"no table {name!r} yet ({src} is missing): run `dvc repro`"
            s = "stage" if len(stages) == 1 else "stages"
            how = f"run `dvc repro {' '.join(stages)}`"
            if cached:
                how += " or `rlhf share pull --datasets`"
            return (
                f"no table {name!r} yet ({src} is missing): made by {s} {', '.join(stages)}: {how}"
            )
        if src is None:
            return f"no table {name!r}; the views here: {', '.join(sorted(views))}"
    if isinstance(e, duckdb.PermissionException):
        return (
            f"{one_line(msg)} (rlhf sql reads only the project's {' and '.join(READABLE)}/ "
            "folders; --allow-writes lifts this)"
        )
    return one_line(msg)


def one_line(msg: str) -> str:
    """DuckDB's message without its `LINE n:` excerpt, on one line."""
    head = msg.split("\n\n", 1)[0]
    return " ".join(head.split())
