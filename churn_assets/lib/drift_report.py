"""Render a :class:`~churn_assets.lib.drift.DriftSummary` as one self-contained HTML page, and
its per-feature plots as PNGs (the same figures the Dagster asset shows)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from churn_assets.lib.drift import DriftSummary, FeatureDrift
from churn_assets.lib.html import escape, image_html, page
from churn_assets.lib.metadata import figure_png

_STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#ef6c00", "alert": "#c62828"}
_MEASURED_ONLY_COLOUR = "#757575"


def feature_plot(row: FeatureDrift) -> bytes:
    """Side-by-side bin shares (reference vs current) on the reference bins, as PNG."""
    positions = np.arange(len(row.bin_labels))
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.bar(positions - 0.2, row.reference_shares, width=0.4, label="reference (training)")
    ax.bar(positions + 0.2, row.current_shares, width=0.4, label="current")
    ax.set_xticks(positions)
    ax.set_xticklabels(row.bin_labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("share")
    ax.set_title(f"{row.feature}  PSI={row.psi:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    return figure_png(fig)


def ranked(summary: DriftSummary) -> list[FeatureDrift]:
    """The score first, then features by PSI, highest first."""
    features = sorted(summary.features, key=lambda f: -f.psi)
    return ([summary.score] if summary.score else []) + features


def _fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "" if value is None else pattern.format(value)


def _row_html(row: FeatureDrift) -> str:
    colour = _STATUS_COLOURS[row.status] if row.alerting else _MEASURED_ONLY_COLOUR
    status = row.status if row.alerting else f"{row.status} (grows with history, not alerted)"
    unseen = ", ".join(row.unseen_categories[:10])
    return (
        "<tr>"
        f"<td>{escape(row.feature)}</td><td>{row.kind}</td>"
        f"<td>{row.psi:.4f}</td><td>{_fmt(row.ks_statistic)}</td>"
        f"<td>{_fmt(row.ks_pvalue, '{:.3g}')}</td>"
        f"<td style='color:{colour};font-weight:bold'>{status}</td>"
        f"<td>{escape(unseen)}</td>"
        "</tr>"
    )


PLOTTED = 8
"""Distribution plots drawn per report (and shown in the UI): the score and the features that
moved most (a plot of a feature that did not move says nothing, and each costs about 80 ms, times
every observation date of a backfill)."""


def plots(summary: DriftSummary, n: int = PLOTTED) -> dict[str, bytes]:
    """PNG per plotted row, by feature name: the report and the UI show the same figures."""
    return {row.feature: feature_plot(row) for row in ranked(summary)[:n]}


def render_html(summary: DriftSummary, dataset: str, figures: dict[str, bytes]) -> str:
    rows = ranked(summary)
    table = "\n".join(_row_html(r) for r in rows)
    colour = _STATUS_COLOURS[summary.status]
    volume_colour = _STATUS_COLOURS[summary.volume_status]
    overview = f"""
<p>Model <b>{escape(summary.model_name)}</b> version <b>{escape(summary.model_version)}</b>,
reference = its training set <code>{escape(summary.training_set)}</code>.</p>
<p>Status: <b style="color:{colour}">{summary.status.upper()}</b>;
share of drifted features {summary.share_drifted:.1%} of the
{len(summary.alerting_features)} alerting ones
(alert at {summary.share_alert:.0%}); PSI warn {summary.psi_warn}, alert {summary.psi_alert}.
PSI bins are the reference deciles (duplicate edges removed, open outer bins).</p>
<p>Population: <b>{summary.current_rows:,}</b> customers scored vs
{summary.reference_rows_per_month:,.0f} per observation date in the reference
(<b style="color:{volume_colour}">{summary.volume_change:+.1%}</b>;
warn at &plusmn;{summary.volume_warn:.0%}, alert at &plusmn;{summary.volume_alert:.0%}).</p>"""
    tests = f"""<table><thead><tr><th>feature</th><th>kind</th><th>PSI</th><th>KS stat</th>
<th>KS p-value</th><th>status</th><th>unseen categories</th></tr></thead>
<tbody>
{table}
</tbody></table>"""
    images = "\n".join(image_html(png, name) for name, png in figures.items())
    return page(
        f"{dataset} drift report: observation date {summary.partition}",
        [
            ("", overview),
            ("Tests", tests),
            (f"Distributions of the {len(figures)} largest shifts", images),
        ],
    )


def write_report(
    summary: DriftSummary, dataset: str, path: Path, figures: dict[str, bytes]
) -> Path:
    """Write atomically (temp file + rename) so a reader never sees a half-written page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(summary, dataset, figures), encoding="utf-8")
    tmp.replace(path)
    return path
