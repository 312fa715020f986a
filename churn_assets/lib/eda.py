"""Data-assessment profiles: the numbers a stakeholder checks before trusting a model."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from churn_assets.lib.contracts import TELCO_CATEGORIES
from churn_assets.lib.metadata import figure_png

TELCO_NUMERIC = ["tenure", "monthly_charges", "total_charges"]


def churn_by_category(frame: pl.DataFrame) -> pl.DataFrame:
    """Churn rate and customer count for every value of every categorical field."""
    parts = [
        frame.group_by(pl.col(column).cast(pl.String).alias("value"))
        .agg(customers=pl.len(), churn_rate=pl.col("churn").mean())
        .with_columns(field=pl.lit(column))
        for column in [*TELCO_CATEGORIES, "senior_citizen"]
    ]
    return (
        pl.concat(parts).select("field", "value", "customers", "churn_rate").sort("field", "value")
    )


def missing_and_outliers(frame: pl.DataFrame, numeric: list[str]) -> pl.DataFrame:
    """Nulls per column, plus Tukey outliers (beyond 1.5 IQR) for numeric columns."""
    rows = []
    for column in frame.columns:
        row: dict[str, object] = {"column": column, "nulls": frame[column].null_count()}
        if column in numeric:
            values = frame[column].cast(pl.Float64)
            q1, q3 = values.quantile(0.25), values.quantile(0.75)
            assert q1 is not None and q3 is not None
            fence = 1.5 * (q3 - q1)
            row |= {
                "min": values.min(),
                "median": values.median(),
                "max": values.max(),
                "iqr_outliers": int(((values < q1 - fence) | (values > q3 + fence)).sum()),
            }
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def distributions_by_churn(frame: pl.DataFrame) -> bytes:
    fig, axes = plt.subplots(1, len(TELCO_NUMERIC), figsize=(13, 3.4))
    for ax, column in zip(axes, TELCO_NUMERIC, strict=True):
        for churned, colour in ((False, "#4C72B0"), (True, "#DD8452")):
            values = frame.filter(pl.col("churn") == churned)[column].to_numpy()
            ax.hist(
                values, bins=30, alpha=0.6, density=True, color=colour, label=f"churn={churned}"
            )
        ax.set_title(column)
    axes[0].legend()
    png = figure_png(fig)
    plt.close(fig)
    return png


def churn_rate_bars(by_category: pl.DataFrame) -> bytes:
    labels = [f"{f}={v}" for f, v in by_category.select("field", "value").iter_rows()]
    fig, ax = plt.subplots(figsize=(8, 11))
    ax.barh(labels, by_category["churn_rate"].to_list(), color="#DD8452")
    ax.invert_yaxis()
    ax.set_xlabel("churn rate")
    ax.tick_params(axis="y", labelsize=7)
    png = figure_png(fig)
    plt.close(fig)
    return png


def retail_monthly_profile(events: pl.DataFrame) -> pl.DataFrame:
    """Lines, invoices, customers, revenue and the returns share per calendar month."""
    return (
        events.with_columns(month=pl.col("invoice_ts").dt.truncate("1mo").dt.date())
        .group_by("month")
        .agg(
            lines=pl.len(),
            invoices=pl.col("invoice").n_unique(),
            customers=pl.col("customer_id").drop_nulls().n_unique(),
            revenue=(pl.col("quantity") * pl.col("unit_price"))
            .filter(pl.col("quantity") > 0)
            .sum(),
            returns_share=(pl.col("quantity") < 0).mean(),
            no_customer_share=pl.col("customer_id").is_null().mean(),
        )
        .sort("month")
    )


def retail_monthly_plot(profile: pl.DataFrame) -> bytes:
    months = profile["month"].to_list()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    axes[0].bar(months, profile["lines"].to_list(), width=20)
    axes[0].set_title("invoice lines per month")
    axes[1].plot(months, profile["customers"].to_list(), marker="o")
    axes[1].set_title("active customers per month")
    axes[2].plot(months, profile["returns_share"].to_list(), marker="o", color="#C44E52")
    axes[2].set_title("share of lines that are returns")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    png = figure_png(fig)
    plt.close(fig)
    return png
