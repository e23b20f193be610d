"""The analytics report: reports/report.html (self-contained) and reports/report.md, with figures
in reports/figures/ and CSV series for `dvc plots` in reports/plots/.

Everything is computed from the pipeline's outputs through DuckDB views (rlhf.analytics) and
Polars; the only Python loop over rows is the gold judge scoring the generations, which is an
evaluation (the judge never feeds training). The parts (all in rlhf.analytics): report_data
gathers, claims judges the paper's claims, figures draws, render writes the documents.
"""

from __future__ import annotations

from pathlib import Path

from rlhf.analytics.claims import check_claims
from rlhf.analytics.figures import (
    fig_curves,
    fig_length_corr,
    fig_overoptimisation,
    fig_pairs,
    fig_policies,
    fig_rewards,
    fig_trajectories,
)
from rlhf.analytics.render import (
    build_sections,
    render_html,
    render_markdown,
    summary_markdown,
    write_plot_series,
)
from rlhf.analytics.report_data import ReportData, collect
from rlhf.core import paths
from rlhf.core.config import Params
from rlhf.core.io import write_text


def build_report(params: Params, root: Path = Path(".")) -> ReportData:
    """Write the figures, plots and documents from the pipeline's outputs."""
    data = collect(params, root)
    data.claims = check_claims(data, params)
    fig_dir = root / paths.FIGURES_DIR
    figs: dict[str, Path] = {}
    if data.policies.height:
        figs["policies"] = fig_policies(data, fig_dir)
        figs["trajectories"] = fig_trajectories(data, params, fig_dir)
    if data.policies.height and "proxy_mean" in data.policies.columns:
        figs["overoptimisation"] = fig_overoptimisation(data, fig_dir)
    if data.pair_stats:
        figs["pairs"] = fig_pairs(data, fig_dir)
    if data.rewards:
        figs["rewards"] = fig_rewards(data, fig_dir)
    if data.corr.height:
        figs["length_corr"] = fig_length_corr(data, fig_dir)
    if data.curves:
        figs["curves"] = fig_curves(data, fig_dir)
    sections = build_sections(data)
    write_plot_series(data, root / paths.PLOTS_DIR)
    out_dir = root / paths.REPORTS_DIR
    write_text(root / paths.REPORT_MD, render_markdown(sections, figs, out_dir))
    write_text(root / paths.REPORT_SUMMARY_MD, summary_markdown(sections))
    write_text(root / paths.REPORT_HTML, render_html(sections, figs))
    return data
