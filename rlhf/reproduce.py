"""`rlhf reproduce --check`: does this machine reproduce the committed dvc.lock, bit for bit,
within noise, or not at all?

A scratch copy of the project (the files git tracks, as they are in the working tree) gets a
DVC cache of its own, so nothing is restored from the user's cache or run-cache: every stage
really runs. Without stage names the whole pipeline re-runs there; with names, the upstream
outputs those stages need are copied out of the user's DVC cache into the scratch copy (read,
never written: the copies are plain byte copies, never links) and only the named stages run.
Then each output's md5 in the scratch dvc.lock is compared with the user's dvc.lock, and for
evaluation metrics that differ (JSON outputs holding `{"mean", "lo", "hi"}` intervals, e.g.
reports/eval/<policy>.json) the new mean is placed against the committed interval.

The user's workspace, params, dvc.lock and cache are only read: the one thing run in the project
itself is `git ls-files`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from rlhf.core.datafiles import UsageError
from rlhf.share import content_md5

EXIT_IDENTICAL, EXIT_WITHIN_NOISE, EXIT_USAGE, EXIT_OUTSIDE = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "exit codes: 0 every output identical to dvc.lock; 1 some differ, but every evaluation "
    "metric that differs is inside its committed interval; 2 usage error (unknown stage, bad "
    "--workdir, an upstream output in neither the DVC cache nor the workspace); 3 a metric "
    "outside its committed interval, an output not produced, or a stage failed"
)

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LockOut:
    stage: str
    path: str
    md5: str | None
    legacy: bool
    """A DVC 2 entry (no `hash: md5`): its object lives at the cache root, not files/md5/."""


@dataclass(frozen=True)
class Lock:
    """dvc.lock, read as YAML: stage -> dep paths, and every output with its md5."""

    deps: dict[str, list[str]]
    outs: dict[str, list[LockOut]]

    @classmethod
    def read(cls, path: Path) -> Lock:
        stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
        deps = {s: [d["path"] for d in v.get("deps") or []] for s, v in stages.items()}
        outs = {
            s: [LockOut(s, o["path"], o.get("md5"), "hash" not in o) for o in v.get("outs") or []]
            for s, v in stages.items()
        }
        return cls(deps, outs)


@dataclass(frozen=True)
class OutputCheck:
    stage: str
    path: str
    committed: str | None
    found: str | None
    """The md5 the scratch run recorded; None when it did not produce the output."""
    files: tuple[str, ...] = ()
    """For a folder that differs: the files in it that differ, are missing or are extra (when
    both listings are in the caches)."""

    @property
    def verdict(self) -> str:
        if self.found is None:
            return "missing"
        return "identical" if self.found == self.committed else "differs"


@dataclass(frozen=True)
class MetricCheck:
    path: str
    name: str
    """Dotted key inside the file, e.g. `win_rate_vs_sft` or `by_judge.gold.win_rate`."""
    mean: float
    lo: float
    hi: float
    found: float | None
    """The mean here; None when the new file lacks the metric."""

    @property
    def inside(self) -> bool:
        return self.found is not None and self.lo <= self.found <= self.hi


@dataclass
class Result:
    outputs: list[OutputCheck]
    metrics: list[MetricCheck]
    """Only the interval metrics of JSON outputs that differ, and only those whose value moved."""
    failed: str | None = None
    """Why the run stopped early (a stage failed), or an output's committed metrics unreadable."""
    scratch: Path | None = None
    """The scratch copy, when kept."""

    @property
    def exit_code(self) -> int:
        if self.failed or any(o.verdict == "missing" for o in self.outputs):
            return EXIT_OUTSIDE
        if any(not m.inside for m in self.metrics):
            return EXIT_OUTSIDE
        if any(o.verdict == "differs" for o in self.outputs):
            return EXIT_WITHIN_NOISE
        return EXIT_IDENTICAL


# --- paths ---------------------------------------------------------------------------------


def _overlaps(a: str, b: str) -> bool:
    """One path is the other or lies inside it."""
    a, b = a.rstrip("/"), b.rstrip("/")
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _tracked_files(root: Path) -> list[str]:
    """Files git tracks under `root` (relative to it); read-only (`git ls-files` writes nothing)."""
    r = subprocess.run(
        ["git", "ls-files", "-z", "--cached"], cwd=root, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise UsageError(f"{root}: not a git checkout ({r.stderr.strip().splitlines()[-1]})")
    return [f for f in r.stdout.split("\0") if f]


def _untracked_files(root: Path) -> list[str]:
    """Files git neither tracks nor ignores: a new module not yet added is the usual reason a
    scratch run fails where the workspace works."""
    r = subprocess.run(
        ["git", "ls-files", "-z", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    return [f for f in r.stdout.split("\0") if f] if r.returncode == 0 else []


def _user_cache(root: Path) -> Path:
    """The user's DVC cache directory, from DVC's own config files (nothing is opened for
    writing)."""
    from dvc.config import Config

    d = Config(dvc_dir=str(root / ".dvc"))["cache"].get("dir")
    return Path(d) if d else root / ".dvc" / "cache"


def _object(cache: Path, md5: str, legacy: bool) -> Path:
    base = cache if legacy else cache / "files" / "md5"
    return base / md5[:2] / md5[2:]


def _prepare_workdir(root: Path, workdir: str | Path | None) -> tuple[Path, bool]:
    """The scratch directory, and whether it existed before (then only its contents go)."""
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="rlhf-reproduce-")), False
    w = Path(workdir).expanduser().resolve()
    if _inside(w, root):
        raise UsageError(f"--workdir {workdir}: inside the project; pick a path outside {root}")
    if w.exists() and (not w.is_dir() or any(w.iterdir())):
        raise UsageError(f"--workdir {workdir}: exists and is not an empty directory")
    existed = w.exists()
    w.mkdir(parents=True, exist_ok=True)
    return w, existed


def _remove(scratch: Path, keep_dir: bool) -> None:
    # DVC makes cache files read-only; rmtree copes with that on Linux (the folder is writable).
    if keep_dir:
        for p in scratch.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    else:
        shutil.rmtree(scratch, ignore_errors=True)


# --- the scratch copy ----------------------------------------------------------------------


def _copy_tracked(root: Path, scratch: Path, files: list[str]) -> None:
    """The working-tree version of every tracked file (uncommitted edits included; files
    deleted in the working tree stay out)."""
    for f in files:
        src = root / f
        if not (src.exists() or src.is_symlink()):
            continue
        dst = scratch / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)


def _configure(scratch: Path) -> None:
    """A cache, run-cache and state of the scratch's own. `core.no_scm`: `dvc repro` refuses
    a directory that is not a git repository unless told there is none (measured, DVC 3.67:
    "is not a git repository"); `git init` plus a commit of the whole tree would work too but
    costs time and a git identity, and no stage reads git. config.local overrides a cache.dir
    in the tracked .dvc/config or the user's global config."""
    (scratch / ".dvc").mkdir(exist_ok=True)
    (scratch / ".dvc" / "config.local").write_text(
        "[core]\n"
        "    no_scm = true\n"
        "    analytics = false\n"
        f"    site_cache_dir = {scratch / '.dvc' / 'site_cache'}\n"
        "[cache]\n"
        f"    dir = {scratch / '.dvc' / 'cache'}\n"
    )


def _restore(out: LockOut, root: Path, cache: Path, scratch: Path) -> str:
    """Put the committed bytes of `out` into the scratch copy: from the user's DVC cache (plain
    copies, so the cache is never linked, let alone written), else from the workspace when its
    bytes hash to dvc.lock's md5. Returns where they came from."""
    dst = scratch / out.path
    if out.md5 is None:
        raise UsageError(f"{out.path} ({out.stage}): no hash in dvc.lock; run that stage first")
    obj = _object(cache, out.md5, out.legacy)
    if out.md5.endswith(".dir") and obj.exists():
        entries = json.loads(obj.read_text())
        objs = [(e["relpath"], _object(cache, e["md5"], out.legacy)) for e in entries]
        if all(o.exists() for _, o in objs):
            for rel, o in objs:
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(o, dst / rel)
            return "DVC cache"
    elif obj.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(obj, dst)
        return "DVC cache"
    src = root / out.path
    if src.exists() and content_md5(src) == out.md5:
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=False)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        return "workspace"
    raise UsageError(
        f"{out.path} (from {out.stage}): in neither the DVC cache nor the workspace with "
        f"dvc.lock's hash; `dvc pull {out.path}` (or `rlhf share pull`) first"
    )


def _dvc_file_outs(scratch: Path, files: list[str]) -> list[LockOut]:
    """Outputs of `dvc add`-ed data (.dvc files): inputs no stage produces."""
    outs = []
    for f in files:
        if not f.endswith(".dvc") or not (scratch / f).is_file():
            continue
        base = Path(f).parent
        for o in (yaml.safe_load((scratch / f).read_text()) or {}).get("outs") or []:
            path = (base / o["path"]).as_posix()
            outs.append(LockOut(f, path, o.get("md5"), "hash" not in o))
    return outs


def _stage_order(lock: Lock, stages: list[str]) -> list[str]:
    """`stages` upstream first (a stage whose dep is another's output runs after it)."""
    todo, order = list(stages), []
    while todo:
        ready = [
            s
            for s in todo
            if not any(
                _overlaps(d, o.path)
                for t in todo
                if t != s
                for o in lock.outs[t]
                for d in lock.deps[s]
            )
        ]
        if not ready:  # a cycle cannot be in a DVC pipeline; keep the given order
            return order + todo
        order += ready
        todo = [s for s in todo if s not in ready]
    return order


def _inputs(
    lock: Lock, run: list[str], scratch: Path, dvc_outs: list[LockOut]
) -> tuple[list[LockOut], list[str]]:
    """What the stages to run need that the scratch copy lacks: committed outputs of other
    stages (or `dvc add`-ed data) to restore, and other paths to copy from the workspace."""
    produced = [o.path for s in run for o in lock.outs[s]]
    others = [o for s in lock.outs if s not in run for o in lock.outs[s]] + dvc_outs
    restore: dict[str, LockOut] = {}
    copy: list[str] = []
    for s in run:
        for d in lock.deps[s]:
            if any(_overlaps(d, p) for p in produced) or (scratch / d).exists():
                continue
            hits = [o for o in others if _overlaps(d, o.path)]
            for o in hits:
                restore.setdefault(o.path, o)
            if not hits and d not in copy:
                copy.append(d)
    return list(restore.values()), copy


# --- running -------------------------------------------------------------------------------


def _env(scratch: Path) -> dict[str, str]:
    """Stage commands call `python`: this interpreter; and `import rlhf` must load the scratch
    copy's code, not the editable install's (PYTHONPATH comes before the install's finder)."""
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(scratch), os.environ.get("PYTHONPATH", "")) if p
    )
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _dvc(
    args: list[str],
    scratch: Path,
    log: Log,
    verbose: bool,
    started: list[str],
    total: int,
    t0: float,
) -> tuple[int, list[str]]:
    """Run DVC in the scratch copy; print each stage as it starts (everything with verbose).
    Returns the exit status and the last lines of its output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=scratch,
        env=_env(scratch),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-39:], line]
            if verbose:
                log(f"  | {line}")
            if line.startswith("Running stage '"):
                name = line.split("'")[1]
                started.append(name)
                of = f"/{total}" if len(started) <= total else ""
                log(f"[{len(started)}{of}] {name}  (+{time.monotonic() - t0:.0f} s)")
    finally:
        if proc.poll() is None and sys.exc_info()[0] is not None:
            proc.terminate()
        rc = proc.wait()
    return rc, tail


def _listing(cache: Path, md5: str) -> dict[str, str] | None:
    p = _object(cache, md5, False)
    if not p.exists():
        return None
    return {e["relpath"]: e["md5"] for e in json.loads(p.read_text())}


def _differing(user_cache: Path, scratch_cache: Path, committed: str, found: str) -> tuple:
    want, have = _listing(user_cache, committed), _listing(scratch_cache, found)
    if want is None or have is None:
        return ()
    return tuple(sorted(r for r in want.keys() | have.keys() if want.get(r) != have.get(r)))


# --- metrics -------------------------------------------------------------------------------


def intervals(doc, prefix: str = "") -> dict[str, tuple[float, float, float]]:
    """Every `{"mean", "lo", "hi"}` interval in a metrics document, by dotted key."""
    out: dict[str, tuple[float, float, float]] = {}
    if isinstance(doc, dict):
        vals = [doc.get(k) for k in ("mean", "lo", "hi")]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
            out[prefix] = (float(vals[0]), float(vals[1]), float(vals[2]))
            return out
        for k, v in doc.items():
            out |= intervals(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _committed_json(out: LockOut, root: Path, cache: Path):
    """The committed metrics file: the workspace copy if its bytes hash to dvc.lock's md5, else
    the cache object; None if neither."""
    src = root / out.path
    if src.is_file() and out.md5 and content_md5(src) == out.md5:
        return json.loads(src.read_text())
    if out.md5:
        obj = _object(cache, out.md5, out.legacy)
        if obj.is_file():
            return json.loads(obj.read_text())
    return None


def _compare_metrics(
    out: LockOut, root: Path, cache: Path, scratch: Path
) -> tuple[list[MetricCheck], str | None]:
    if not out.path.endswith(".json"):
        return [], None
    try:
        new = json.loads((scratch / out.path).read_text())
    except (OSError, ValueError):
        return [], None
    try:
        old = _committed_json(out, root, cache)
    except ValueError:
        old = None
    old_iv, new_iv = intervals(old) if old is not None else {}, intervals(new)
    if old is None:
        return [], (f"{out.path}: committed values unavailable" if new_iv else None)
    checks = []
    for name, (mean, lo, hi) in old_iv.items():
        here = new_iv.get(name)
        if here is not None and here == (mean, lo, hi):
            continue
        checks.append(MetricCheck(out.path, name, mean, lo, hi, here[0] if here else None))
    return checks, None


# --- the check -----------------------------------------------------------------------------


def check(
    root: str | Path = ".",
    stages: Sequence[str] = (),
    *,
    keep: bool = False,
    workdir: str | Path | None = None,
    verbose: bool = False,
    log: Log = _stderr,
) -> Result:
    """Re-run the pipeline (or only `stages`) in a scratch copy of the project at `root` and
    compare every output it re-ran with `root`'s dvc.lock. Raises UsageError before anything
    runs for an unknown stage, a bad workdir or an upstream output that cannot be restored."""
    root = Path(root).resolve()
    if not (root / "dvc.yaml").is_file() or not (root / "dvc.lock").is_file():
        raise UsageError(f"{root}: no dvc.yaml and dvc.lock (run `dvc repro` and commit first)")
    lock = Lock.read(root / "dvc.lock")
    unknown = [s for s in stages if s not in lock.outs]
    if unknown:
        known = ", ".join(sorted(lock.outs))
        raise UsageError(f"no stage {', '.join(map(repr, unknown))} in dvc.lock; known: {known}")
    files = _tracked_files(root)
    cache = _user_cache(root)
    run = _stage_order(lock, list(dict.fromkeys(stages))) if stages else list(lock.outs)
    scratch, existed = _prepare_workdir(root, workdir)
    try:
        log(f"scratch copy: {scratch}")
        untracked = _untracked_files(root)
        if untracked:
            more = ", ..." if len(untracked) > 5 else ""
            log(
                f"warning: {len(untracked)} untracked files are not in the scratch copy "
                f"(`git add` them to include them): {', '.join(untracked[:5])}{more}"
            )
        _copy_tracked(root, scratch, files)
        _configure(scratch)
        # Nothing committed may pass for a result: the outputs to re-run (uncached ones are
        # git-tracked, so copied) and their dvc.lock entries go.
        for s in run:
            for o in lock.outs[s]:
                p = scratch / o.path
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        if stages:
            doc = yaml.safe_load((scratch / "dvc.lock").read_text())
            for s in run:
                doc["stages"].pop(s, None)
            (scratch / "dvc.lock").write_text(yaml.safe_dump(doc, sort_keys=False))
        else:
            (scratch / "dvc.lock").unlink()
        restore, copy = _inputs(lock, run, scratch, _dvc_file_outs(scratch, files))
        for o in restore:
            log(f"input {o.path} (from {o.stage}): {_restore(o, root, cache, scratch)}")
        for d in copy:
            src = root / d
            if src.exists():
                log(f"input {d}: copied from the workspace (tracked by neither git nor DVC)")
                dst = scratch / d
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(src, dst) if src.is_dir() else shutil.copyfile(src, dst)

        failed, started = None, []
        t0 = time.monotonic()
        calls = [["repro", "-f"]] if not stages else [["repro", "-s", "-f", s] for s in run]
        for args in calls:
            rc, tail = _dvc(args, scratch, log, verbose, started, len(run), t0)
            if rc != 0:
                where = started[-1] if started else args[-1]
                failed = f"`dvc {' '.join(args)}` failed (exit {rc}) in stage {where}"
                if not verbose:
                    log("\n".join(f"  | {t}" for t in tail))
                break
        log(f"ran {len(started)} stage{'s' * (len(started) != 1)} in {time.monotonic() - t0:.0f} s")

        here = Lock.read(scratch / "dvc.lock") if (scratch / "dvc.lock").exists() else None
        found = {
            (o.stage, o.path): o.md5 for s in (here.outs if here else {}) for o in here.outs[s]
        }
        scratch_cache = scratch / ".dvc" / "cache"
        outputs, metrics, notes = [], [], []
        for s in run:
            for o in lock.outs[s]:
                md5 = found.get((s, o.path))
                if md5 is not None and not (scratch / o.path).exists():
                    md5 = None
                files_ = ()
                if md5 and o.md5 and md5 != o.md5:
                    if md5.endswith(".dir") and o.md5.endswith(".dir"):
                        files_ = _differing(cache, scratch_cache, o.md5, md5)
                    m, note = _compare_metrics(o, root, cache, scratch)
                    metrics += m
                    notes += [note] if note else []
                outputs.append(OutputCheck(s, o.path, o.md5, md5, files_))
        if notes and not failed:
            failed = "; ".join(notes)
        return Result(outputs, metrics, failed, scratch if keep else None)
    finally:
        if not keep:
            _remove(scratch, existed)


def format_report(res: Result) -> str:
    """The table (stage, output, verdict), the metrics that moved, and the summary line."""

    def verdict(o: OutputCheck) -> str:
        if not o.files:
            return o.verdict
        more = ", ..." if len(o.files) > 4 else ""
        return f"{o.verdict} ({len(o.files)} file{'s' * (len(o.files) > 1)}: {', '.join(o.files[:4])}{more})"

    rows = [("stage", "output", "verdict")] + [(o.stage, o.path, verdict(o)) for o in res.outputs]
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    if res.metrics:
        lines.append("")
        lines.append("evaluation metrics that moved (committed mean [interval] -> here):")
        for m in res.metrics:
            here = "absent" if m.found is None else f"{m.found:.4g}"
            verdict = "within noise" if m.inside else "OUTSIDE the committed interval"
            lines.append(
                f"  {m.path} {m.name}: {m.mean:.4g} [{m.lo:.4g}, {m.hi:.4g}] -> {here}  {verdict}"
            )
    n = len(res.outputs)
    counts = {v: sum(o.verdict == v for o in res.outputs) for v in ("differs", "missing")}
    words = {"differs": ("differs", "differ"), "missing": ("missing", "missing")}
    extra = ", ".join(f"{c} {words[v][c > 1]}" for v, c in counts.items() if c)
    lines.append("")
    if res.failed:
        lines.append(f"failed: {res.failed}")
    outside = sum(not m.inside for m in res.metrics)
    summary = f"{n - sum(counts.values())} of {n} outputs identical" + (
        f" ({extra})" if extra else ""
    )
    if res.metrics:
        summary += (
            f"; {len(res.metrics) - outside} of {len(res.metrics)} moved metrics within noise"
        )
    lines.append(summary)
    if res.scratch:
        lines.append(f"scratch copy kept: {res.scratch}")
    return "\n".join(lines)
