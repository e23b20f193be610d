"""The docs: the site builds strictly, every generated block is fresh, and no result is typed
by hand outside one (rlhf/docs_pages.py explains the block convention)."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from rlhf import docs_pages

from ..conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# A result typed by hand: what a run measures and prose would otherwise freeze. Settings
# (beta = 0.1, lr 5e-7, 3 iterations x 20K prompts) and versions (0.19.8) are not results.
TYPED_RESULT = re.compile(
    r"(?<![\w.])[-−]?\d*\.\d{3,}(?![\d.])"  # three or more decimals: 0.572, .572, -0.046
    r"|\[\s*[-−]?\d*\.\d+\s*,\s*[-−]?\d*\.\d+\s*\]"  # an interval: [0.546, 0.600]
    r"|\b\d+\.\d+\s?[×x](?![\w])"  # a measured ratio: 2.9×, 1.6x
    r"|\b\d\.\d+e[-+]?\d+\b"  # a measured tolerance: 6.9e-6
    r"|\b\d+\.\d+\s?(?:s|min|h)\b"  # a measured duration: 1.8 s, 2.5 min
)


def outside_blocks(path):
    """The page's text with every block's body blanked (lines kept, for line numbers), after
    checking that each marker is known and paired."""
    text = path.read_text()
    allowed = docs_pages.GENERATED | (
        {docs_pages.HISTORY} if path.name == "history.md" and path.parent.name == "docs" else set()
    )
    out, open_name = [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = docs_pages.MARKER.match(line)
        if m:
            name, edge = m.groups()
            assert name in allowed, f"{path.name}:{n}: block {name!r} is not generated here"
            if edge == "start":
                assert open_name is None, f"{path.name}:{n}: {name!r} opens inside {open_name!r}"
                open_name, first = name, None
            else:
                assert open_name == name, f"{path.name}:{n}: {name!r} closes {open_name!r}"
                open_name = None
            out.append("")
            continue
        if open_name == docs_pages.HISTORY and first is None and line.strip():
            first = line
            assert re.search(r"\b\d{4}-\d{2}-\d{2}\b", line), f"{path.name}:{n}: undated history"
        out.append("" if open_name else line)
    assert open_name is None, f"{path.name}: block {open_name!r} is never closed"
    return out


def test_the_typed_result_pattern():
    typed = ["0.572", "gain .041", "r −0.046", "[0.47, 0.65]", "2.9×", "1.6x", "6.9e-6", "1.8 s"]
    fine = ["β = 0.1", "lr 5e-7", "deepspeed 0.19.8", "127.0.0.1", "3 × 20K prompts", "≥ 10×"]
    assert all(TYPED_RESULT.search(t) for t in typed), [
        t for t in typed if not TYPED_RESULT.search(t)
    ]
    assert not [t for t in fine if TYPED_RESULT.search(t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_result_is_typed_by_hand(page):
    hits = [
        f"{page.relative_to(REPO)}:{n}: {m.group(0)!r}"
        for n, line in enumerate(outside_blocks(page), 1)
        for m in TYPED_RESULT.finditer(line)
    ]
    assert not hits, (
        "results belong in a generated block (python -m rlhf.docs_pages) or, for old runs, "
        f"in a dated history block of docs/history.md: {hits}"
    )


def test_every_generated_block_is_fresh():
    _, stale = docs_pages.render(REPO)
    assert not stale, stale


def test_a_format_without_a_rule_stops_the_generator(monkeypatch):
    fmt = next(iter(docs_pages.FORMATS.values()))
    monkeypatch.setitem(docs_pages.FORMATS, "new-format", fmt)
    with pytest.raises(SystemExit, match="new-format"):
        docs_pages.formats_page(REPO)


def test_no_stage_imports_the_docs_generator():
    # Editing the generator must re-run nothing: dvc.yaml names it nowhere, and no module of
    # the library imports it (stages import only the library).
    from rlhf.core.modules import imports

    assert "docs_pages" not in (REPO / "dvc.yaml").read_text()
    me = REPO / "rlhf" / "docs_pages.py"
    importers = [
        f.relative_to(REPO).as_posix()
        for f in [*(REPO / "rlhf").rglob("*.py"), *(REPO / "stages").glob("*.py")]
        if me in imports(f)
    ]
    assert not importers, importers


def test_the_readme_is_a_first_visit_and_links_into_the_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme) <= 12_000, len(readme)
    links = set(re.findall(r"\]\((docs/[^)#]+)", readme))
    assert links and not [link for link in links if not (REPO / link).exists()]


def test_every_page_is_in_the_nav():
    nav = set(re.findall(r":\s*(\S+\.md)\s*$", (REPO / "mkdocs.yml").read_text(), re.M))
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages == nav, (pages - nav, nav - pages)


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs / mkdocs-material not installed (the dev extra has them)",
)
def test_the_site_builds_strictly(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "site" / "params" / "index.html").exists()
