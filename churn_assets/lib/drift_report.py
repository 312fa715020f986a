"""Render a :class:`~churn_assets.lib.drift.DriftSummary` as one self-contained HTML file.

Plots are embedded as base64 PNGs so the report can be mailed, archived or opened from the
reports folder without a web server or any asset next to it.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: assets run in worker processes without a display

import matplotlib.pyplot as plt
import numpy as np

from churn_assets.lib.drift import DriftSummary, FeatureDrift

_STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#ef6c00", "alert": "#c62828"}
_MEASURED_ONLY_COLOUR = "#757575"


def feature_plot_png(row: FeatureDrift) -> str:
    """Side-by-side bin shares (reference vs current) on the reference bins, as base64 PNG."""
    positions = np.arange(len(row.bin_labels))
    fig, ax = plt.subplots(figsize=(7, 2.6), dpi=90)
    try:
        ax.bar(positions - 0.2, row.reference_shares, width=0.4, label="reference (training)")
        ax.bar(positions + 0.2, row.current_shares, width=0.4, label="current month")
        ax.set_xticks(positions)
        ax.set_xticklabels(row.bin_labels, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("share")
        ax.set_title(f"{row.feature}  PSI={row.psi:.3f}", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _fmt(value: float | None, pattern: str = "{:.4f}") -> str:
    return "" if value is None else pattern.format(value)


def _row_html(row: FeatureDrift) -> str:
    colour = _STATUS_COLOURS[row.status] if row.alerting else _MEASURED_ONLY_COLOUR
    status = row.status if row.alerting else f"{row.status} (grows with history, not alerted)"
    unseen = ", ".join(row.unseen_categories[:10])
    return (
        "<tr>"
        f"<td>{html.escape(row.feature)}</td><td>{row.kind}</td>"
        f"<td>{row.psi:.4f}</td><td>{_fmt(row.ks_statistic)}</td>"
        f"<td>{_fmt(row.ks_pvalue, '{:.3g}')}</td>"
        f"<td style='color:{colour};font-weight:bold'>{status}</td>"
        f"<td>{html.escape(unseen)}</td>"
        "</tr>"
    )


def render_html(summary: DriftSummary) -> str:
    rows = ([summary.score] if summary.score else []) + summary.features
    table = "\n".join(_row_html(r) for r in rows)
    plots = "\n".join(
        f"<figure><img alt='{html.escape(r.feature)}' "
        f"src='data:image/png;base64,{feature_plot_png(r)}'/></figure>"
        for r in rows
    )
    colour = _STATUS_COLOURS[summary.status]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drift report {html.escape(summary.partition)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: 4px; }}
</style></head><body>
<h1>Retail churn drift report: observation date {html.escape(summary.partition)}</h1>
<p>Model <b>{html.escape(summary.model_name)}</b> version <b>{html.escape(summary.model_version)}</b>,
reference = its training set <code>{html.escape(summary.training_set)}</code>.</p>
<p>Status: <b style="color:{colour}">{summary.status.upper()}</b>;
share of drifted features {summary.share_drifted:.1%} of the
{len(summary.alerting_features)} alerting ones
(alert at {summary.share_alert:.0%}); PSI warn {summary.psi_warn}, alert {summary.psi_alert}.
PSI bins are the reference deciles (duplicate edges removed, open outer bins).</p>
<p>Population: <b>{summary.current_rows}</b> customers scored vs
{summary.reference_rows_per_month:.0f} per observation date in the reference
(<b style="color:{_STATUS_COLOURS[summary.volume_status]}">{summary.volume_change:+.1%}</b>;
warn at &plusmn;{summary.volume_warn:.0%}, alert at &plusmn;{summary.volume_alert:.0%}).</p>
<table><thead><tr><th>feature</th><th>kind</th><th>PSI</th><th>KS stat</th>
<th>KS p-value</th><th>status</th><th>unseen categories</th></tr></thead>
<tbody>
{table}
</tbody></table>
<h2>Per-feature distributions</h2>
{plots}
</body></html>
"""


def write_report(summary: DriftSummary, path: Path) -> Path:
    """Write atomically (temp file + rename) so the UI link never shows a half-written page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(summary), encoding="utf-8")
    tmp.replace(path)
    return path
