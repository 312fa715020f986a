"""Data-quality and EDA report of a dataset's raw table: in the Dagster UI and as an HTML page."""

from pathlib import Path

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.lib import eda
from churn_assets.lib.contracts import LABEL
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.html import image_html, page, table_html
from churn_assets.lib.metadata import md_table, mean, png_md
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings


def _write(settings: ChurnSettings, spec: DatasetSpec, html: str) -> Path:
    folder = Path(settings.reports_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "quality_report.html"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _snapshot_report(spec: DatasetSpec, frame: pl.DataFrame) -> tuple[str, list, dict]:
    numeric = eda.snapshot_numeric(spec)
    by_category = eda.churn_by_category(frame, eda.snapshot_categorical(spec), LABEL)
    quality = eda.missing_and_outliers(frame, numeric)
    overall = mean(frame[LABEL])
    bars, distributions = (
        eda.churn_rate_bars(by_category),
        eda.distributions_by_churn(frame, numeric, LABEL),
    )
    headline = f"{frame.height:,} customers, churn rate {overall:.1%}."
    sections = [
        ("", f"<p class='big'>{headline}</p>"),
        ("Churn rate by field", table_html(by_category) + image_html(bars, "churn rate by field")),
        ("Distributions by churn", image_html(distributions, "distributions")),
        ("Missing values and outliers", table_html(quality)),
    ]
    markdown = "\n\n".join(
        [
            headline,
            png_md(bars, "churn rate by field"),
            png_md(distributions, "distributions"),
            "### Missing values and outliers\n\n" + md_table(quality),
        ]
    )
    figures = {
        "churn_rate": round(overall, 4),
        "customers": frame.height,
        "iqr_outliers": int(quality["iqr_outliers"].fill_null(0).sum()),
    }
    return markdown, sections, figures


def _events_report(spec: DatasetSpec, events: pl.DataFrame) -> tuple[str, list, dict]:
    profile = eda.events_monthly_profile(events)
    plot = eda.events_monthly_plot(profile)
    notes = eda.unsupported(spec, events)
    no_customer = mean(events["customer_id"].is_null())
    returns = mean(events["event_type"] != "purchase")
    headline = (
        f"{events.height:,} event rows, {events['customer_id'].drop_nulls().n_unique():,} "
        f"customers, returns share {returns:.1%}, rows without customer {no_customer:.1%}."
    )
    support = "\n".join(f"- {n}" for n in notes) or "- every feature is supported by this data"
    sections = [
        ("", f"<p class='big'>{headline}</p>"),
        (
            "What this data cannot support",
            "<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>"
            if notes
            else "<p>Every feature is supported by this data.</p>",
        ),
        ("Per month", image_html(plot, "monthly profile") + table_html(profile)),
    ]
    markdown = "\n\n".join(
        [
            headline,
            "### What this data cannot support\n\n" + support,
            png_md(plot, "monthly profile"),
        ]
    )
    figures = {
        "rows": events.height,
        "returns_share": round(returns, 4),
        "no_customer_share": round(no_customer, 4),
        "months": profile.height,
        "unsupported": len(notes),
    }
    return markdown, sections, figures


def build_quality_report(spec: DatasetSpec) -> dg.AssetsDefinition:
    raw = spec.key(f"raw_{spec.raw_table}")

    @dg.asset(
        name=spec.key("quality_report"),
        group_name="sources",
        deps=[raw],
        kinds={"duckdb", "polars", "html"},
        owners=[spec.owner],
        pool="duckdb",
        tags={"dataset": spec.name},
        description=f"Data assessment of {spec.name}: profile, distributions, missing values, "
        "outliers and what the data cannot support; an HTML page under the reports folder.",
    )
    def quality_report(settings: ChurnSettings, duckdb: DuckDBResource) -> dg.MaterializeResult:
        with duckdb.connect(read_only=True) as con:
            frame = con.sql(f"SELECT * FROM {spec.db_schema('raw')}.{spec.raw_table}").pl()
        build = _events_report if spec.kind == "events" else _snapshot_report
        markdown, sections, figures = build(spec, frame)
        path = _write(
            settings, spec, page(f"{spec.name}: data assessment", sections, spec.description)
        )
        return dg.MaterializeResult(
            metadata={
                "report": dg.MetadataValue.md(markdown),
                **metadata.report_links(settings, "report", path),
                **figures,
            }
        )

    return quality_report
