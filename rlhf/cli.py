"""The `rlhf` command: SQL over every pipeline output, and ablations as DVC experiments.

rlhf sql "SELECT iteration, avg(chosen_length - rejected_length) FROM pairs GROUP BY 1"
rlhf sql                      # interactive: end statements with ';', '.tables', '.quit'
rlhf sql --tables             # the views and the files behind them
rlhf ablations list|run|collect
rlhf share targets|push|pull --datasets|--models|--iteration ITER|--all [-r REMOTE]
rlhf verify                   # re-hash every output against dvc.lock
rlhf reproduce --check [STAGE ...]  # re-run in a scratch copy, compare with dvc.lock
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl


def _print_frame(df: pl.DataFrame, fmt: str, max_rows: int) -> None:
    if fmt == "csv":
        sys.stdout.write(df.write_csv())
    elif fmt == "json":
        sys.stdout.write(df.write_json() + "\n")
    elif fmt == "markdown":
        with pl.Config(
            tbl_formatting="MARKDOWN",
            tbl_hide_column_data_types=True,
            tbl_hide_dataframe_shape=True,
            tbl_rows=max_rows,
            tbl_cols=-1,
            fmt_str_lengths=80,
        ):
            print(df)
    else:
        with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
            print(df)


def cmd_sql(args: argparse.Namespace) -> int:
    return _guard(_sql, args)


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from rlhf import sql
    from rlhf.analytics import views as analytics
    from rlhf.core import paths
    from rlhf.core.config import ConfigError
    from rlhf.core.datafiles import UsageError
    from rlhf.core.duck import connect

    root = Path(args.root)
    con = connect()
    iterations = None
    params_file = root / paths.PARAMS
    if not args.all_iterations and params_file.exists():
        from rlhf.core.config import load_params

        try:
            iterations = list(load_params(params_file).iterations)
        except ConfigError as e:
            raise UsageError(
                f"{' '.join(str(e).split())} (rlhf sql reads only the iterations params.yaml names; "
                "--all-iterations reads every one on disk without it)"
            ) from None
    # Absolute paths: the read-only connection allows files by their folder.
    views = analytics.register_views(con, root.resolve(), iterations)
    if not views:
        print(
            f"error: no pipeline outputs under {root.resolve()}: run `dvc repro` "
            "or `rlhf share pull --datasets` first",
            file=sys.stderr,
        )
        return 1
    if not args.allow_writes:
        sql.restrict(con, root)
    if args.tables:
        for name, src in sorted(views.items()):
            cols = con.sql(f"SELECT * FROM {name} LIMIT 0").columns
            print(f"{name:14s} {src}\n{'':14s} columns: {', '.join(cols)}")
        return 0

    def run(q: str) -> bool:
        try:
            if not args.allow_writes:
                sql.check(con, q)
            rel = con.sql(q)
            if rel is not None:
                frame = rel.pl()
        except sql.SqlRefused as e:
            print(f"error: {e}", file=sys.stderr)
            return False
        except duckdb.Error as e:
            print(f"error: {sql.explain(e, root, views)}", file=sys.stderr)
            return False
        if rel is not None:
            _print_frame(frame, args.format, args.max_rows)
        return True

    if args.query:
        return 0 if run(args.query) else 1
    print(f"views: {', '.join(sorted(views))}. End statements with ';'. .tables, .quit")
    buf: list[str] = []
    while True:
        try:
            line = input("rlhf> " if not buf else "  ...> ")
        except EOFError:
            print()
            return 0
        if not buf and line.strip() in (".quit", ".exit"):
            return 0
        if not buf and line.strip() == ".tables":
            print("\n".join(sorted(views)))
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            run("\n".join(buf))
            buf = []


EXIT_OK, EXIT_QUALITY, EXIT_USAGE, EXIT_UNREADABLE, EXIT_WRITE = 0, 1, 2, 3, 4
"""Exit codes of `rlhf convert` / `rlhf prompts` (README: "When conversion fails")."""
EXIT_CODES_HELP = (
    "exit codes: 0 converted; 1 nothing kept, or defective rows over --max-quarantine; "
    "2 refused before reading (output is a directory, the input, or not .parquet/.jsonl/"
    ".jsonl.gz); 3 input unreadable; 4 an output cannot be written (read-only folder, a parent "
    "that is a file, disk full): the output and its quarantine are both unchanged"
)


def _print_quarantine(quarantine: list[dict], rows) -> None:
    """Counts per reason, each with its first example: where (file and 1-based line or row),
    the dataset's field and what is wrong."""
    from rlhf.core.datafiles import where

    first: dict[str, dict] = {}
    counts: dict[str, int] = {}
    for q in quarantine:
        counts[q["reason"]] = counts.get(q["reason"], 0) + 1
        first.setdefault(q["reason"], q)
    for reason in sorted(counts):
        q = first[reason]
        fld = f" field {q['field']!r}:" if q["field"] else ""
        print(
            f"    {reason}: {counts[reason]}  (first: {where(rows, q['source_row'])}:{fld} {q['detail']})"
        )


def _verdict(kept: int, quarantine: list[dict], rows, max_share: float, fmt: str, suggest) -> int:
    """EXIT_QUALITY when nothing is kept or defects (not the paper's filter rules) exceed
    `max_share` of the rows read; prints why, and a better --from when one fits the rows."""
    from rlhf.preferences.adapters import FILTER_REASONS

    defects = sum(1 for q in quarantine if q["reason"] not in FILTER_REASONS)
    share = defects / max(len(rows), 1)
    problem = None
    if kept == 0:
        problem = "nothing kept"
    elif share > max_share:
        problem = f"{defects} defective rows ({share:.1%}) exceed --max-quarantine {max_share:g}"
    if problem is None:
        return EXIT_OK
    hint = suggest(rows) if suggest else None
    if hint and hint != fmt:
        problem += f"; did you mean --from {hint}?"
    print(f"error: {problem}", file=sys.stderr)
    return EXIT_QUALITY


def _debug(args: argparse.Namespace) -> bool:
    import os

    return bool(
        getattr(args, "debug", False)
        or getattr(args, "debug_all", False)
        or os.environ.get("RLHF_DEBUG")
    )


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _guard(fn, args: argparse.Namespace) -> int:
    """One-line errors with meaningful exit codes; `--debug` shows the traceback instead."""
    from rlhf.core.datafiles import DataError, UsageError, WriteError
    from rlhf.share import ShareError

    try:
        return fn(args)
    except (UsageError, DataError, WriteError, FileNotFoundError, ShareError) as e:
        if _debug(args):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        if isinstance(e, WriteError):
            return EXIT_WRITE
        return EXIT_USAGE if isinstance(e, UsageError | ShareError) else EXIT_UNREADABLE


def _run_guarded(args: argparse.Namespace) -> int:
    """Any subcommand: whatever escapes it is one line, never a traceback, unless --debug."""
    import os

    from rlhf.core.config import ConfigError

    try:
        return args.func(args)
    except BrokenPipeError:  # `rlhf sql ... | head`: the reader left; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        if _debug(args):
            raise
        print("error: interrupted", file=sys.stderr)
        return 130
    except ConfigError as e:
        if _debug(args):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:
        if _debug(args):
            raise
        print(
            f"error: {type(e).__name__}: {_one_line(e)} "
            f"(`rlhf --debug {args.command} ...` shows where)",
            file=sys.stderr,
        )
        return 1


def _refuse_one_object(spec: str, rows) -> None:
    """A JSON-lines reader sees a pretty-printed single object as one bad line per line:
    refuse it as not JSON lines (exit 3) instead of quarantining its lines."""
    import json

    from rlhf.core.datafiles import BadRow, DataError, _open_bytes

    path = Path(spec)
    if not rows.lines or not path.is_file() or not all(isinstance(r, BadRow) for r in rows):
        return
    try:
        obj = json.loads(_open_bytes(path))
    except (ValueError, DataError):
        return
    if isinstance(obj, dict):
        raise DataError(
            f"{spec}: one JSON object ({len(obj)} keys), expected JSON lines or a JSON array "
            "(one object per line, or [{...}, {...}]); nothing was written"
        )


def _prompt_formats_fitting(rows) -> list[str]:
    """The `rlhf prompts --from` formats that read most of the first rows (best first)."""
    from rlhf.prompts.sources import PROMPT_FORMATS

    head = [r for r in rows[:200] if isinstance(r, dict)]
    pairish = ("chosen", "rejected", "response", "completion")
    if any(w in k.lower() for r in head for k in r for w in pairish):
        return []  # answers to compare: a preference format we do not know, not prompts
    hits: dict[str, int] = {}
    for name, (fn, _) in PROMPT_FORMATS.items():
        n = 0
        for r in head:
            try:
                res = fn(r)
            except Exception:  # a format that does not fit a row at all
                continue
            n += not (isinstance(res, tuple) and res and isinstance(res[0], str))
        hits[name] = n
    best = max(hits.values(), default=0)
    if not head or best * 2 < len(head):
        return []
    return [n for n, h in hits.items() if h == best]


def _sniffed(rows) -> str | None:
    from rlhf.preferences.formats import sniff

    return sniff(rows)[0]


def cmd_convert(args: argparse.Namespace) -> int:
    return _guard(_convert, args)


def _convert(args: argparse.Namespace) -> int:
    import dataclasses

    from rlhf.core.datafiles import UsageError, check_outputs, load_rows, sibling, write_outputs
    from rlhf.core.schemas import validate
    from rlhf.preferences.formats import FORMATS, convert_rows, sniff, to_output

    quarantine_path = (
        Path(args.quarantine) if args.quarantine else sibling(args.output, "quarantine")
    )
    check_outputs([args.input], [args.output, quarantine_path])
    rows = load_rows(args.input, args.split)
    _refuse_one_object(args.input, rows)
    name = args.fmt
    if name == "auto":
        name, share = sniff(rows)
        if name is None:
            prompt_fmts = _prompt_formats_fitting(rows)
            if prompt_fmts:
                raise UsageError(
                    f"{args.input}: prompts, not preference pairs (no chosen/rejected): "
                    f"`rlhf prompts --from {prompt_fmts[0]} {args.input} OUT.parquet`"
                    + (f" (or --from {' / '.join(prompt_fmts[1:])})" if prompt_fmts[1:] else "")
                )
            keys = sorted({k for r in rows[:200] if isinstance(r, dict) for k in r})
            raise UsageError(
                f"{args.input}: no known format fits its rows (fields: "
                f"{', '.join(keys[:12]) or 'none: no row is a JSON object'}); "
                f"pick one with --from (rlhf convert --help lists them)"
            )
        print(f"--from auto: {name} ({share:.0%} of the first rows have its fields)")
    fmt = FORMATS[name]
    overrides = {
        k: v
        for k, v in (
            ("min_margin", args.min_margin),
            ("min_ratio", args.min_ratio),
            ("max_pairs_per_prompt", args.max_pairs_per_prompt),
            ("label", args.label),
        )
        if v is not None
    }
    flt = dataclasses.replace(fmt.default_filter, **overrides)
    res = convert_rows(name, rows, flt, args.seed, args.source)
    out, lost = to_output(pa_table(res.pairs, "preferences"), args.to)
    if args.to == "standard":
        out = validate("preferences", out, args.output)
    quarantined = validate("quarantine", pa_table(res.quarantine, "quarantine"), quarantine_path)
    # The output and its quarantine belong together: both replaced, or neither (a failure,
    # or nothing kept: the old pair then stays as it was).
    if res.pairs:
        write_outputs([(out, args.output), (quarantined, quarantine_path)])
    print(f"{args.input} ({name}, mirrors {fmt.mirrors}): {res.raw_rows} rows read")
    if res.pairs:
        print(f"  kept {len(res.pairs)} pairs -> {args.output} ({args.to})")
    else:
        print(f"  kept 0 pairs; {args.output} and {quarantine_path} not written")
    if lost:
        print(
            f"  {lost} kept pairs have multi-turn or system context that {args.to} cannot hold; "
            f"not written (use --to trl to keep them)"
        )
    print(f"  quarantined {len(res.quarantine)}" + (f" -> {quarantine_path}" if res.pairs else ""))
    _print_quarantine(res.quarantine, rows)
    return _verdict(len(res.pairs), res.quarantine, rows, args.max_quarantine, name, _sniffed)


def cmd_prompts(args: argparse.Namespace) -> int:
    return _guard(_prompts, args)


def _prompts(args: argparse.Namespace) -> int:
    from rlhf.core.datafiles import check_outputs, load_rows, sibling, write_outputs
    from rlhf.core.schemas import validate
    from rlhf.prompts.sources import convert_prompts

    qpath = sibling(args.output, "quarantine")
    check_outputs([args.input], [args.output, qpath])
    rows = load_rows(args.input, args.split)
    _refuse_one_object(args.input, rows)
    pool, quarantine, report = convert_prompts(args.fmt, rows, args.source)
    q = validate("quarantine", pa_table(quarantine, "quarantine"), qpath)
    if pool.num_rows:  # both replaced, or neither (a failure, or no prompts)
        write_outputs([(validate("prompt_pool", pool, args.output), args.output), (q, qpath)])
    print(
        f"{args.input} ({args.fmt}): {report['rows']} rows, {report['prompts']} prompts "
        f"({report['unique_prompts']} unique, {report['duplicates']} duplicates)"
    )
    if pool.num_rows:
        print(f"  -> {args.output}")
    else:
        print(f"  no prompts; {args.output} and {qpath} not written")
    print(f"  quarantined {len(quarantine)}" + (f" -> {qpath}" if pool.num_rows else ""))
    _print_quarantine(quarantine, rows)
    return _verdict(pool.num_rows, quarantine, rows, args.max_quarantine, args.fmt, None)


def pa_table(rows: list[dict], name: str):
    import pyarrow as pa

    from rlhf.core.schemas import schema_for

    return pa.Table.from_pylist(rows, schema=schema_for(name))


def cmd_profile(args: argparse.Namespace) -> int:
    from rlhf import profiles
    from rlhf.core.config import ConfigError

    try:
        if args.action == "list":
            now = profiles.current()
            for n in profiles.names():
                mark = "*" if n == now else " "
                print(f"{mark} {n:10s} {profiles.load(n).description}")
            return 0
        if args.action == "current":
            print(profiles.current() or "custom (params.yaml edited since the last `use`)")
            return 0
        if not args.name:
            print(f"error: rlhf profile {args.action} needs a profile name", file=sys.stderr)
            return 2
        if args.action == "show":
            print(profiles.render(args.name), end="")
            return 0
        prof, backup = profiles.use(args.name, force=args.force)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if backup:
        print(f"your edited params.yaml is kept as {backup}")
    print(f"params.yaml now holds profile {prof.name!r}: {prof.description}")
    if prof.setup:
        print(f"set up first (once):\n  {prof.setup}")
    print("then run: dvc repro")
    return 0


def _quality_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--max-quarantine",
        type=float,
        default=0.1,
        help="exit 1 when defective rows (not the paper's filter rules) exceed this share of "
        "the rows read (default 0.1)",
    )
    sp.add_argument("--debug", action="store_true", help="show tracebacks")


def _share_selection(sp: argparse.ArgumentParser) -> None:
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--datasets", action="store_true", help="every table (outputs under data/)")
    g.add_argument("--models", action="store_true", help="every model folder (under models/)")
    g.add_argument("--iteration", metavar="ITER", help="one iteration's tables and models")
    g.add_argument("--all", action="store_true", help="every cached output")
    sp.add_argument("--root", default=".", help="project directory (default: .)")
    sp.add_argument("--debug", action="store_true", help="show tracebacks")


def cmd_share(args: argparse.Namespace) -> int:
    return _guard(_share, args)


def _share(args: argparse.Namespace) -> int:
    """Print, push or pull the DVC targets of a selection; the transfer is DVC's own. A push
    sends only what the local cache holds; a pull checks out every output it could fetch whole;
    both name by path what they leave out."""
    import subprocess

    from rlhf import share

    kind = "datasets" if args.datasets else "models" if args.models else "all" if args.all else None
    outs = share.tracked_outputs(args.root)
    try:
        picked = share.targets(outs, kind, args.iteration)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.action == "targets":
        print("\n".join(picked))
        return 0
    remote = ["-r", args.remote] if args.remote else []

    def dvc(action: str, paths: list[str]) -> int:
        cmd = ["dvc", action, *remote, *paths] if action != "checkout" else ["dvc", action, *paths]
        print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
        return subprocess.run(cmd, cwd=args.root).returncode

    def named(lack) -> str:
        return ", ".join(f"{o.path} ({o.stage})" for o in lack)

    if args.action == "push":
        have, lack = share.split_cached(outs, picked)
        if lack:
            print(
                f"not pushed, not in the local DVC cache ({len(lack)}; their stages have not run "
                f"here): {named(lack)}",
                file=sys.stderr,
            )
        if not have:
            print(
                "error: nothing to push: no output of this selection is in the local DVC cache "
                "(run `dvc repro` or `dvc pull` first)",
                file=sys.stderr,
            )
            return 1
        return dvc("push", have)
    # Pull = fetch what the remote has, then check out only the outputs that came whole: an
    # object missing on the remote then costs only its own output.
    fetched = dvc("fetch", picked)
    have, lack = share.split_cached(share.tracked_outputs(args.root), picked)
    checked_out = dvc("checkout", have) if have else 0
    if lack:
        stages = " ".join(dict.fromkeys(o.stage for o in lack))
        print(
            f"error: not on the remote, not checked out ({len(lack)} of {len(picked)}): "
            f"{named(lack)}; the other {len(have)} are checked out. Push them from a clone that "
            f"has them (`rlhf share push`), or make them here: `dvc repro {stages}`",
            file=sys.stderr,
        )
        return 1
    return checked_out or fetched


def cmd_verify(args: argparse.Namespace) -> int:
    return _guard(_verify, args)


def _verify(args: argparse.Namespace) -> int:
    from rlhf import share

    outs = share.tracked_outputs(args.root)
    checked, bad = share.verify(outs, args.root)
    by_path = {o.path: o for o in outs}
    corrupt = [m for m in bad if not m.missing]
    missing = [m for m in bad if m.missing]
    for m in corrupt:
        inside = f" ({', '.join(m.files)})" if m.files else ""
        print(f"{m.path}: expected {m.expected}, found {m.found}{inside}")
        print(f"  repair: {share.repair_command(by_path[m.path])}")
    if args.present:
        if missing:
            print(
                f"not in the workspace, not checked ({len(missing)}): "
                + ", ".join(m.path for m in missing),
                file=sys.stderr,
            )
        present = checked - len(missing)
        print(
            f"{present} outputs present re-hashed against dvc.lock: "
            + (f"{len(corrupt)} differ" if corrupt else "all match"),
            file=sys.stderr,
        )
        return 1 if corrupt else 0
    for m in missing:
        print(f"{m.path}: expected {m.expected}, found missing")
    found = [f"{len(corrupt)} differ"] * bool(corrupt) + [f"{len(missing)} missing"] * bool(missing)
    hint = " (`rlhf verify --present` checks only the outputs that are here)" if missing else ""
    print(
        f"{checked} outputs re-hashed against dvc.lock: "
        + (", ".join(found) if found else "all match")
        + hint,
        file=sys.stderr,
    )
    return 1 if bad else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    return _guard(_reproduce, args)


def _reproduce(args: argparse.Namespace) -> int:
    from rlhf import reproduce

    res = reproduce.check(
        args.root, args.stages, keep=args.keep, workdir=args.workdir, verbose=args.verbose
    )
    print(reproduce.format_report(res))
    return res.exit_code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="rlhf", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--debug",
        dest="debug_all",
        action="store_true",
        help="show tracebacks instead of one-line errors (any subcommand; or RLHF_DEBUG=1)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("sql", help="DuckDB SQL over every Parquet output and metrics file")
    q.add_argument("query", nargs="?", help="one statement; omit for an interactive session")
    q.add_argument("--root", default=".", help="project directory (default: .)")
    q.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    q.add_argument("--max-rows", type=int, default=50, help="rows shown in table formats")
    q.add_argument("--tables", action="store_true", help="list the views and their files")
    q.add_argument(
        "--all-iterations",
        action="store_true",
        help="also read outputs of iterations params.yaml no longer names (left on disk by DVC)",
    )
    q.add_argument(
        "--allow-writes",
        action="store_true",
        help="DuckDB's full connection: COPY/EXPORT/ATTACH write files anywhere, any file is "
        "readable, INSTALL fetches extensions. Default: read-only, reading only the project's "
        "data/ and reports/",
    )
    q.add_argument("--debug", action="store_true", help="show tracebacks")
    q.set_defaults(func=cmd_sql)

    from rlhf.analytics import ablations
    from rlhf.preferences.formats import FORMATS, OUTPUTS

    ablations.add_parser(sub)
    c = sub.add_parser(
        "convert",
        help="a public preference dataset -> the standard format",
        description="Read a dataset in its published schema (local .jsonl/.json/"
        ".parquet, optionally .gz; a hub id with RLHF_ALLOW_HUB=1), apply the "
        "paper's filter for it, write the kept pairs and a quarantine table "
        "with a reason for every dropped row.",
        epilog=EXIT_CODES_HELP,
    )
    c.add_argument(
        "--from",
        dest="fmt",
        required=True,
        choices=["auto", *FORMATS],
        help="the input's schema; auto: the format whose fields the rows have",
    )
    c.add_argument("input")
    c.add_argument("output", help="output .parquet, .jsonl or .jsonl.gz (the suffix decides)")
    c.add_argument("--to", choices=OUTPUTS, default="standard")
    c.add_argument("--quarantine", help="default: <output>.quarantine.parquet")
    c.add_argument("--split", default="train", help="hub split (hub ids only)")
    c.add_argument("--source", help="source name in the output (default: the format)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--min-margin", type=float)
    c.add_argument("--min-ratio", type=float)
    c.add_argument("--max-pairs-per-prompt", type=int)
    c.add_argument("--label", choices=["safer", "better"])
    _quality_flags(c)
    c.set_defaults(func=cmd_convert)

    from rlhf.prompts.sources import PROMPT_FORMATS

    pr = sub.add_parser(
        "prompts", help="a public prompt dataset -> a prompt-pool table", epilog=EXIT_CODES_HELP
    )
    pr.add_argument("--from", dest="fmt", required=True, choices=list(PROMPT_FORMATS))
    pr.add_argument("input")
    pr.add_argument("output", help="output .parquet / .jsonl / .jsonl.gz (prompt_pool schema)")
    pr.add_argument("--split", default="train")
    pr.add_argument("--source", help="source / category name (default: the format)")
    _quality_flags(pr)
    pr.set_defaults(func=cmd_prompts)

    pf = sub.add_parser(
        "profile",
        help="switch params.yaml between profiles (embedded, smollm2, paper, ...)",
        description="A profile is profiles/<name>.yaml over the embedded default; `use` writes "
        "it to params.yaml, then `dvc repro` runs it.",
    )
    pf.add_argument("action", choices=["list", "show", "use", "current"])
    pf.add_argument("name", nargs="?", help="profile name (show, use)")
    pf.add_argument(
        "--force",
        action="store_true",
        help="use: replace a params.yaml with edits no profile reproduces (kept as "
        "params.yaml.bak-<n> first); without it such a params.yaml is refused",
    )
    pf.add_argument("--debug", action="store_true", help="show tracebacks")
    pf.set_defaults(func=cmd_profile)

    sh = sub.add_parser(
        "share",
        help="which outputs to push/pull through a DVC remote, or push/pull them",
        description="`targets` prints the outputs of a selection, one per line (for `dvc push` "
        "or `dvc pull`); `push` and `pull` run DVC with them. `push` sends only the outputs "
        "the local DVC cache holds and names the others; `pull` fetches, checks out every "
        "output that came whole and names by path the ones the remote lacks. Exit codes: "
        "DVC's; 1 when a pull left an output out or a push had nothing to send; 2 for an "
        "unknown iteration or a folder that is not a DVC project.",
    )
    sh.add_argument("action", choices=["targets", "push", "pull"])
    _share_selection(sh)
    sh.add_argument("-r", "--remote", help="DVC remote name (default: the project's default)")
    sh.set_defaults(func=cmd_share)

    v = sub.add_parser(
        "verify",
        help="re-hash every output against dvc.lock (DVC trusts size and mtime)",
        description="Exit 0 when every output recorded in dvc.lock has the recorded hash, 1 "
        "when any differs or is missing (each named on stdout; a differing one with the "
        "command that repairs it), 2 outside a DVC project.",
    )
    v.add_argument("--root", default=".", help="project directory (default: .)")
    v.add_argument(
        "--present",
        action="store_true",
        help="check only the outputs in the workspace (after a partial pull, or when only "
        "some stages ran); the missing ones are listed apart and do not fail",
    )
    v.add_argument("--debug", action="store_true", help="show tracebacks")
    v.set_defaults(func=cmd_verify)

    from rlhf.reproduce import EXIT_CODES_HELP as REPRODUCE_EXIT_CODES

    rp = sub.add_parser(
        "reproduce",
        help="re-run the pipeline (or some stages) in a scratch copy and compare with dvc.lock",
        description="--check: copy the git-tracked files (uncommitted edits included) to a "
        "scratch directory with a DVC cache of its own, re-run the whole pipeline there (as "
        "long as `dvc repro`), or only the named stages with their upstream outputs copied "
        "from your DVC cache, and compare every re-run output's md5 with dvc.lock; for "
        "evaluation metrics that moved, whether the new value is inside the committed "
        "interval. Your workspace, dvc.lock and cache are only read.",
        epilog=REPRODUCE_EXIT_CODES,
    )
    rp.add_argument(
        "--check", action="store_true", required=True, help="re-run and compare (required)"
    )
    rp.add_argument("stages", nargs="*", metavar="STAGE", help="only these (e.g. dpo@iter_1)")
    rp.add_argument("--keep", action="store_true", help="keep the scratch copy")
    rp.add_argument("--workdir", help="scratch directory (absent or empty, outside the project)")
    rp.add_argument("--verbose", action="store_true", help="stream DVC's and the stages' output")
    rp.add_argument("--root", default=".", help="project directory (default: .)")
    rp.add_argument("--debug", action="store_true", help="show tracebacks")
    rp.set_defaults(func=cmd_reproduce)
    args = p.parse_args(argv)
    return _run_guarded(args)


if __name__ == "__main__":
    sys.exit(main())
