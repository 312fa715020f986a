"""Data-assessment profiles: the numbers a stakeholder checks before trusting a model, and what
a dataset's data cannot support (said up front, instead of silently producing empty features)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.metadata import figure_png

# --------------------------------------------------------------------------------------------
# Snapshot datasets
# --------------------------------------------------------------------------------------------


def snapshot_numeric(spec: DatasetSpec) -> list[str]:
    return [c.name for c in spec.snap.columns if c.type in ("integer", "numeric")]


def snapshot_categorical(spec: DatasetSpec) -> list[str]:
    return [c.name for c in spec.snap.columns if c.type in ("categorical", "boolean")] + [
        c.name
        for c in spec.snap.columns
        if c.type == "integer" and c.max is not None and c.max <= 1
    ]


def churn_by_category(frame: pl.DataFrame, columns: list[str], label: str) -> pl.DataFrame:
    """Churn rate and customer count for every value of every categorical field."""
    parts = [
        frame.group_by(pl.col(column).cast(pl.String).alias("value"))
        .agg(customers=pl.len(), churn_rate=pl.col(label).cast(pl.Float64).mean())
        .with_columns(field=pl.lit(column))
        for column in columns
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


def distributions_by_churn(frame: pl.DataFrame, numeric: list[str], label: str) -> bytes:
    fig, axes = plt.subplots(1, len(numeric), figsize=(4.3 * len(numeric), 3.4), squeeze=False)
    for ax, column in zip(axes[0], numeric, strict=True):
        for churned, colour in ((False, "#4C72B0"), (True, "#DD8452")):
            values = frame.filter(pl.col(label) == churned)[column].cast(pl.Float64).to_numpy()
            ax.hist(
                values, bins=30, alpha=0.6, density=True, color=colour, label=f"churn={churned}"
            )
        ax.set_title(column)
    axes[0][0].legend()
    return figure_png(fig)


def churn_rate_bars(by_category: pl.DataFrame) -> bytes:
    labels = [f"{f}={v}" for f, v in by_category.select("field", "value").iter_rows()]
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(labels) + 1))
    ax.barh(labels, by_category["churn_rate"].to_list(), color="#DD8452")
    ax.invert_yaxis()
    ax.set_xlabel("churn rate")
    ax.tick_params(axis="y", labelsize=7)
    return figure_png(fig)


# --------------------------------------------------------------------------------------------
# Events datasets
# --------------------------------------------------------------------------------------------


def events_monthly_profile(events: pl.DataFrame) -> pl.DataFrame:
    """Rows, orders, customers, purchase revenue and the returns share per calendar month."""
    return (
        events.with_columns(month=pl.col("event_ts").dt.truncate("1mo").dt.date())
        .group_by("month")
        .agg(
            rows=pl.len(),
            orders=pl.col("order_id").n_unique(),
            customers=pl.col("customer_id").drop_nulls().n_unique(),
            revenue=pl.col("amount").filter(pl.col("event_type") == "purchase").sum(),
            returns_share=(pl.col("event_type") != "purchase").mean(),
            no_customer_share=pl.col("customer_id").is_null().mean(),
        )
        .sort("month")
    )


def events_monthly_plot(profile: pl.DataFrame) -> bytes:
    months = profile["month"].to_list()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.4))
    axes[0].bar(months, profile["rows"].to_list(), width=20)
    axes[0].set_title("event rows per month")
    axes[1].plot(months, profile["customers"].to_list(), marker="o")
    axes[1].set_title("customers with an event per month")
    axes[2].plot(months, profile["returns_share"].to_list(), marker="o", color="#C44E52")
    axes[2].set_title("share of rows that are returns or cancellations")
    for ax in axes:
        ax.tick_params(axis="x", rotation=45)
    return figure_png(fig)


def unsupported(spec: DatasetSpec, events: pl.DataFrame) -> list[str]:
    """What this data cannot support, in words: features that will be constant or duplicated.

    The training-set asset measures the same on the feature table and leaves such features out;
    saying it here, at the source, is what lets a user fix their mapping instead of wondering.
    """
    columns = spec.ev.columns
    notes = []
    if columns.order_id is None:
        notes.append(
            "no order id is mapped: every row is its own order, so order counts equal line "
            "counts and the line features are left out as duplicates"
        )
    if columns.product_id is None:
        notes.append("no product id is mapped: distinct-product features are constant (0)")
    if columns.quantity is None:
        notes.append("no quantity is mapped: returns are recognised by a negative amount only")
    if not (events["event_type"] != "purchase").any():
        notes.append("the data holds no returns or cancellations: return features are constant")
    return notes
