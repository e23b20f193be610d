"""The docs' generated blocks: made from the code and the committed run, never typed by hand.

    python -m rlhf.docs_pages            # rewrite every generated block
    python -m rlhf.docs_pages --check    # exit 1 naming each stale block

A generated block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in README.md or
docs/*.md (see BLOCKS); everything outside the blocks is prose, which holds no measured number
(tests/pipeline/test_docs.py). Hand-typed numbers of older runs live only in docs/history.md, inside
dated ``<!-- history:start -->`` ... ``<!-- history:end -->`` blocks.

No stage imports this module (nor any module a stage imports), so editing it re-runs nothing;
``python -m rlhf.deps --check`` and the layering test keep it that way.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import shlex
import sys
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from rlhf.analytics import summary
from rlhf.analytics.ablations import ABLATIONS, command
from rlhf.core import paths
from rlhf.core.config import Params, SourceFilter, field_docs
from rlhf.preferences.formats import EMBEDDED_FORMATS, FORMATS
from rlhf.prompts.sources import PROMPT_FORMATS

REPO = Path(__file__).resolve().parent.parent
HISTORY = "history"  # the one block name that is typed by hand (docs/history.md only)
# A marker is a line of its own, so that prose may quote one in backticks.
MARKER = re.compile(r"^<!-- ([a-z0-9-]+):(start|end) -->$")


def _cell(text: Any) -> str:
    """One table cell: a single line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: str) -> str:
    return f"`{value}`" if value else ""


# --- params.md: every key of params.yaml, from the config dataclasses ------------------------


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"mapping: name → {_type_name(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "section (rows below)"
    return {int: "integer", float: "number", str: "string", bool: "true / false"}.get(tp, str(tp))


def _range(meta: Any) -> str:
    signs = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
    out = [f"{signs[k]} {meta[k]}" for k in signs if k in meta]
    if "min_len" in meta:
        out.append(f"at least {meta['min_len']} entries")
    return ", ".join(out)


def _plain(value: Any) -> Any:
    """Config values as plain data, dataclasses reduced to the fields that differ from their
    class defaults (so `mix.filters` reads as the paper's rules, not as every field)."""
    if dataclasses.is_dataclass(value):
        base = None
        with contextlib.suppress(TypeError):  # a required field: show every field
            base = type(value)()
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if base is None or getattr(value, f.name) != getattr(base, f.name)
        }
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _show(value: Any) -> str:
    value = _plain(value)
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, dict | list):
        text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
        return f"`{text.strip()}`"
    return f"`{value}`"


def _param_rows(cls: type, default: Any, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        dflt = getattr(default, f.name) if default is not None else dataclasses.MISSING
        if dflt is dataclasses.MISSING and f.default is dataclasses.MISSING:
            shown = "required"
        elif dflt is dataclasses.MISSING:
            shown = _show(f.default)
        else:
            shown = "" if dataclasses.is_dataclass(tp) else _show(dflt)
        kind = " ".join(
            x for x in (_type_name(tp), _range(f.metadata) and f"({_range(f.metadata)})") if x
        )
        rows.append(f"| `{key}` | {_cell(kind)} | {_cell(shown)} | {_cell(docs.get(f.name, ''))} |")
        if dataclasses.is_dataclass(tp):
            rows += _param_rows(tp, dflt, f"{key}.")
        elif typing.get_origin(tp) is dict and dataclasses.is_dataclass(typing.get_args(tp)[1]):
            inner = typing.get_args(tp)[1]
            try:
                inner_default = inner()
            except TypeError:  # required fields (e.g. iterations' policy_in)
                inner_default = None
            rows += _param_rows(inner, inner_default, f"{key}.<name>.")
    return rows


def params_page(root: Path) -> str:
    # The code's defaults are the committed params.yaml (tests/core/test_config.py): one column.
    default = Params()
    docs = field_docs(Params)
    hints = typing.get_type_hints(Params)
    out = []
    head = "| key | type | default (= `params.yaml`) | meaning |\n|---|---|---|---|"
    top = [f for f in dataclasses.fields(Params) if not dataclasses.is_dataclass(hints[f.name])]
    for f in dataclasses.fields(Params):
        tp = hints[f.name]
        if not dataclasses.is_dataclass(tp):
            continue
        out.append(f"## `{f.name}`\n\n{_cell(tp.__doc__ or docs.get(f.name, ''))}\n")
        rows = _param_rows(tp, getattr(default, f.name), f"{f.name}.")
        out.append(head + "\n" + "\n".join(rows) + "\n")
    # The top-level keys that are not sections (iterations, seeds) share one table.
    rows = []
    for row in _param_rows(Params, default, ""):
        if any(row.startswith(f"| `{f.name}") for f in top):
            rows.append(row)
    out.append("## Top-level keys\n\n" + head + "\n" + "\n".join(rows) + "\n")
    return "\n".join(out).strip()


# --- formats.md: the dataset formats `rlhf convert` and `rlhf prompts` read -------------------

# What each preference format's adapter does, beyond the registry's fields (the registry holds
# the schema; the rule is prose). A format added to FORMATS without a line here stops the
# generator, so the table never silently lacks a row.
FORMAT_RULES = {
    "hh-rlhf": "transcripts `\\n\\nHuman: …\\n\\nAssistant: …` → messages; pairs that differ "
    "before the last turn are quarantined (`prefix_mismatch`), never re-cut",
    "shp": "score ratio ≥ `min_ratio`, ≤ `max_pairs_per_prompt` pairs per post (highest ratio "
    "first); a label contradicting the scores is quarantined",
    "helpsteer": "pairs of responses to one prompt by `helpfulness` gap ≥ `min_margin` (the other "
    "attributes `coherence`, `complexity`, `verbosity` are kept); a response left in no pair "
    "is quarantined",
    "pku-saferlhf": "`label: safer` (default) or `better` (`better_response_id`); a label "
    "contradicting `is_response_{0,1}_safe` is quarantined",
    "ultrafeedback": "best `completions[].overall_score` vs a random completion ≥ `min_margin` lower",
    "ultrafeedback-binarized": "scores kept; ties (`tied_rating`) and a label contradicting the "
    "scores are quarantined",
    "ultrainteract": "trajectory (`from`/`value` turns) → messages; correct `chosen` vs "
    "incorrect `rejected`",
    "codeultrafeedback": "`responses[].model/response` rated by `annotations[].model/rating`; "
    "string ratings parsed; best vs a random ≥ `min_margin` lower; an unparseable rating is "
    "quarantined",
    "argilla-math": "`chosen_rating` / `rejected_rating` must agree with the label and differ "
    "by ≥ `min_margin`",
    "orca-dpo": "`system` prompt kept; `rating`, `status`, `in_gsm8k_train` read: `status: tie` "
    "and GSM8K-train rows are quarantined",
    "capybara": "multi-turn conversations; `rating_chosen` / `rating_rejected` must agree",
    "sharegpt": "`conversations[].from/value` (or `messages[].role/content`), `system`, "
    "`chosen`, `rejected` (`{from, value}`): every turn and the system prompt kept; roles "
    "`human` / `gpt` / `system` (others, such as `observation`, quarantined as `bad_roles`)",
    "alpaca": "`input`, `system`, `history` (`[[query, answer], ...]`) read too; prompt = "
    '`instruction` + `"\\n"` + `input` (LLaMA-Factory\'s rule; an empty `input` adds nothing)',
    "pairwise-judged": "`input`, `annotator1..3` (1, 2, or 0 for a tie): a strict majority of the "
    "labels present decides; no majority (ties included) is quarantined as `no_majority`; "
    "scores = votes",
    "rlhflow": "optional `chosen_score` / `rejected_score` checked against the label",
    "trl": "conversational (explicit or implicit prompt) or plain text with a prompt",
}

# What `rlhf prompts --from FORMAT` reads and what becomes the prompt.
PROMPT_RULES = {
    "ultrafeedback": ("`instruction`", "one user turn"),
    "helpsteer": ("`prompt`", "one user turn"),
    "openorca": ("`system_prompt`, `question`", "system turn (if any) + user turn"),
    "ultrainteract": ("`instruction`", "one user turn"),
    "capybara": ("`conversation[0].input`", "the first user turn"),
    "dibt": ("`prompt`", "one user turn"),
    "alpaca": (
        "`instruction`, `input`, `system`, `history`",
        "as for `rlhf convert --from alpaca`",
    ),
    "questions": (
        "`turns` (strings, MT-Bench; or `{content}`, Arena-Hard v0.1) or `prompt` (Arena-Hard "
        "v2), `category`, `subcategory`",
        "the first turn; later turns kept in `follow_ups` (scripted user turns of a multi-turn "
        "question); the row's category kept (`category/subcategory`)",
    ),
    "plain": ("the first of `prompt`, `instruction`, `text`, `question`", "one user turn"),
}


def _missing(registry: dict, rules: dict, name: str) -> None:
    if gone := [k for k in registry if k not in rules]:
        raise SystemExit(f"rlhf/docs_pages.py: {name} has no entry for {gone}: add one")


def _filter(flt: SourceFilter) -> str:
    base = SourceFilter()
    diff = {f.name: getattr(flt, f.name) for f in dataclasses.fields(flt)}
    diff = {k: v for k, v in diff.items() if v != getattr(base, k)}
    return ", ".join(
        f"`{k}: {v:g}`" if isinstance(v, float) else f"`{k}: {v}`" for k, v in diff.items()
    )


def formats_page(_root: Path) -> str:
    _missing(FORMATS, FORMAT_RULES, "FORMAT_RULES")
    embedded = {fmt: src for src, fmt in EMBEDDED_FORMATS.items()}
    rows = [
        "| `--from` | mirrors | fields every row needs | paper filter (default) | labels | "
        "embedded source | rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in FORMATS.items():
        fields = ", ".join(f"`{k}` ({kind})" for k, kind in f.fields.items())
        rows.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    f"`{name}`",
                    f.mirrors,
                    fields,
                    _filter(f.default_filter) or "—",
                    f"`{f.annotator}`",
                    _code(embedded.get(name, "")),
                    FORMAT_RULES[name],
                )
            )
            + " |"
        )
    return "\n".join(rows)


def prompt_formats_page(_root: Path) -> str:
    _missing(PROMPT_FORMATS, PROMPT_RULES, "PROMPT_RULES")
    rows = ["| `--from` | mirrors | fields read | prompt |", "|---|---|---|---|"]
    for name, (_, mirrors) in PROMPT_FORMATS.items():
        fields, prompt = PROMPT_RULES[name]
        rows.append(f"| `{name}` | {_cell(mirrors)} | {_cell(fields)} | {_cell(prompt)} |")
    return "\n".join(rows)


# --- ablations.md: the registry of rlhf/analytics/ablations.py -------------------------------


def ablations_page(root: Path) -> str:
    rows = ["| ablation | what it tests | command |", "|---|---|---|"]
    for name, (_, what) in ABLATIONS.items():
        cmd = shlex.join(command(name, params_file=root / paths.PARAMS))
        rows.append(f"| `{name}` | {_cell(what)} | `{cmd}` |")
    return "\n".join(rows)


# --- architecture.md: which code edits re-run which stages (from dvc.yaml) --------------------


def every_stage_page(root: Path) -> str:
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    counts: Counter[str] = Counter()
    for body in stages.values():
        body = body.get("do", body)  # a foreach stage: one definition, run per iteration
        counts.update(d for d in body.get("deps", []) if isinstance(d, str) and d.endswith(".py"))
    n = len(stages)
    rows = [f"| code file | stage definitions that depend on it (of {n}) |", "|---|---|"]
    for path, k in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if 2 * k >= n:
            rows.append(f"| `{path}` | {'every one' if k == n else k} |")
    return "\n".join(rows)


# --- pipeline.md: the README's figure ---------------------------------------------------------


def figure_page(root: Path) -> str:
    m = re.search(
        r"<!-- pipeline-figure -->\s*(```mermaid\n.+?\n```)", (root / "README.md").read_text(), re.S
    )
    if not m:
        raise SystemExit("README.md: no <!-- pipeline-figure --> mermaid block")
    return m.group(1)


# --- results.md and the README: from the committed reports/ -----------------------------------


def report_page(root: Path) -> str:
    """reports/report.md without its title and figures (the docs cannot reach reports/;
    reports/report.html has them)."""
    text = (root / paths.REPORT_MD).read_text()
    lines = [ln for ln in text.splitlines() if not re.match(r"!\[[^\]]*\]\([^)]*\)\s*$", ln)]
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def stage_times_page(root: Path) -> str | None:
    """The stage times of the run that wrote dvc.lock. They are git-ignored, so a workspace
    rewrites the block only when it timed at least every stage the block names (after a
    whole `dvc repro`); otherwise (a fresh clone, a partial run) the block stays as it is."""
    new = summary.timings_markdown(root)
    if new is None:
        return None
    old = summary.block_body((root / "docs/results.md").read_text(), "stage-times") or ""
    named = set(re.findall(r"^\| `([^`]+)` \|", old, re.M))
    have = set(summary.stage_times(root / paths.TIMINGS_DIR))
    return new if named <= have else None


def real_size_page(root: Path) -> str | None:
    """bench/real_size.py's last results (bench/results/real_size.json) as a table, each ratio
    against its target; None (the block left as it is) where the file is absent."""
    f = root / "bench" / "results" / "real_size.json"
    if not f.is_file():
        return None
    r = json.loads(f.read_text())
    g, s, d = r["generation"], r["scoring"], r["dpo"]

    def met(ratio: float, target: float) -> str:
        return "yes" if ratio >= target else "**no**"

    rows = [
        "| benchmark | setup | the pipeline's way | the other way | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
        f"| HF generation: batched vs a per-prompt loop | {g['setup']} | {g['batched_tok_s']:.0f} "
        f"tokens/s | {g['loop_tok_s']:.0f} tokens/s | {g['ratio']:.2f}x | >= {g['target']:.0f}x "
        f"| {met(g['ratio'], g['target'])} |",
        f"| RM scoring: length-bucketed vs RLHFlow's `pipeline` at batch size 1 | {s['setup']} "
        f"| {s['bucketed_per_s']:.1f} responses/s | {s['pipeline_bs1_per_s']:.1f} responses/s "
        f"| {s['ratio']:.2f}x | >= {s['target']:.0f}x | {met(s['ratio'], s['target'])} |",
        f"| DPO step time: LoRA (rank 16) vs full fine-tuning | {d['setup']} "
        f"| {d['lora']['s_per_step']:.2f} s/step | {d['full']['s_per_step']:.2f} s/step "
        f"| {d['time_ratio']:.2f}x | — | — |",
        f"| DPO peak RSS: LoRA vs full (a reference copy) | {d['setup']} "
        f"| {d['lora']['peak_rss_gib']:.2f} GiB | {d['full']['peak_rss_gib']:.2f} GiB "
        f"| {d['memory_ratio']:.2f}x | — | — |",
    ]
    head = (
        f"Model: {r['model']}, {r['params'] / 1e6:.0f} M parameters. Machine: {r['machine']}. "
        f"Largest score difference between the two scoring ways: "
        f"{s['max_score_difference']:.1e}.\n\n"
    )
    return head + "\n".join(rows)


def engine_page(root: Path) -> str | None:
    """bench/real_size.py's serving-engine part (bench/results/real_size.json, `server`): the
    server backend against in-process HF on the same prompts, as a table; None where absent."""
    f = root / "bench" / "results" / "real_size.json"
    r = json.loads(f.read_text()) if f.is_file() else {}
    v = r.get("server")
    if not isinstance(v, dict):
        return None
    rows = [
        "| backend | generated tokens/s | vs HF | engine start-up | reproducible |",
        "|---|---|---|---|---|",
        f"| `hf`: in-process, batched (the default) | {v['hf']['tok_s']:.0f} | 1.00x | — | yes |",
    ]
    for arm, what, same in (
        ("server_c1", "`server`: transformers serve, concurrency 1", "yes"),
        ("server_c8_cb", "`server`: transformers serve --continuous-batching, concurrency 8", "no"),
    ):
        a = v[arm]
        rows.append(
            f"| {what} | {a['tok_s']:.0f} | {v[arm + '_ratio']:.2f}x | {a['startup_s']:.0f} s "
            f"| {same} |"
        )
    machine = v.get("machine") or r["machine"]
    return f"{v['setup']}; SmolLM2-135M, fp32, on {machine}.\n\n" + "\n".join(rows)


@dataclass(frozen=True)
class Block:
    path: str
    """File, relative to the repository root."""
    name: str
    """The marker name: <!-- name:start --> ... <!-- name:end -->."""
    make: Callable[[Path], str | None]
    """The block's text, or None to leave it as it is (its source is not in this workspace)."""
    source: str
    """What it is generated from (for the stale message)."""
    checked: bool = True
    """Whether --check compares it; False only where the source is not committed."""


BLOCKS = (
    Block("README.md", "results", summary.readme_results_markdown, "reports/summary.md"),
    Block("docs/results.md", "report", report_page, "reports/report.md"),
    Block(
        "docs/results.md",
        "stage-times",
        stage_times_page,
        "reports/timings/ (git-ignored)",
        checked=False,
    ),
    Block("docs/params.md", "params", params_page, "rlhf/core/config.py, params.yaml"),
    Block("docs/formats.md", "formats", formats_page, "rlhf/preferences/readers/"),
    Block("docs/formats.md", "prompt-formats", prompt_formats_page, "rlhf/prompts/sources.py"),
    Block("docs/ablations.md", "ablations", ablations_page, "rlhf/analytics/ablations.py"),
    Block("docs/pipeline.md", "figure", figure_page, "README.md's pipeline figure"),
    Block("docs/architecture.md", "every-stage", every_stage_page, "dvc.yaml"),
    Block("docs/scale.md", "real-size", real_size_page, "bench/results/real_size.json"),
    Block("docs/engines.md", "engine-throughput", engine_page, "bench/results/real_size.json"),
)
GENERATED = {b.name for b in BLOCKS}


def render(root: Path = REPO) -> tuple[dict[str, str], list[str]]:
    """(every file with its blocks regenerated, the checked blocks that were stale)."""
    texts: dict[str, str] = {}
    stale = []
    for b in BLOCKS:
        text = texts.get(b.path) or (root / b.path).read_text()
        body = b.make(root)
        if body is not None:
            new = summary.replace_block(text, b.name, body, b.path)
            if b.checked and new != text:
                stale.append(f"{b.path}: block {b.name!r} is stale (made from {b.source})")
            text = new
        texts[b.path] = text
    return texts, stale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--check", action="store_true", help="exit 1 if a block is stale; write nothing")
    p.add_argument("--root", type=Path, default=REPO)
    args = p.parse_args(argv)
    texts, stale = render(args.root)
    if args.check:
        for line in stale:
            print(line, file=sys.stderr)
        if stale:
            print("run: python -m rlhf.docs_pages", file=sys.stderr)
        return 1 if stale else 0
    for path, text in texts.items():
        f = args.root / path
        if f.read_text() != text:
            f.write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
