"""One row per scored customer with everything a decision needs, and the cohort map built on it.

The *customer table* (:func:`customer_table`) joins a month's scores, the customers' values and,
when they exist, their labels; it adds

* ``value_tier``: low / mid / high by the value tertiles of the scored customers of that month.
  Tiers use quantile edges (value ≤ 1/3-quantile → low, ≤ 2/3-quantile → mid, else high), so
  equal values always share a tier; with many ties a tier can hold more than a third.
* the *main reason*: the driver with the largest risk-*raising* SHAP contribution among the
  top-3 drivers (which are sorted by |SHAP|), and its reason family. A driver that lowers the
  risk is not a reason to act, so a customer whose top-3 drivers all lower the risk gets the
  family ``none``.

The *cohort map* (:func:`cohort_table`) groups customers by risk decile × value tier × reason
family: size, mean predicted churn, revenue at risk Σ p × value, and, on customers whose labels
are mature, the realized churn rate and the calibration gap (realized - predicted, on the same
mature customers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

import numpy as np
import polars as pl

from churn_assets.lib.datasets import Family

REASON_FAMILIES: tuple[str, ...] = get_args(Family)
"""The families every feature declares: the registry's own list, so a new family is added once."""

NO_REASON = "none"
VALUE_TIERS = ("low", "mid", "high")
N_DRIVERS = 3


def value_tiers(values: np.ndarray) -> tuple[list[str], tuple[float, float]]:
    """Tier of every value and the two tertile edges used."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return [], (float("nan"), float("nan"))
    low_edge, high_edge = (float(q) for q in np.quantile(values, [1 / 3, 2 / 3]))
    index = np.where(values <= low_edge, 0, np.where(values <= high_edge, 1, 2))
    return [VALUE_TIERS[i] for i in index], (low_edge, high_edge)


def _driver_columns(scores: pl.DataFrame) -> list[int]:
    return [i for i in range(1, N_DRIVERS + 1) if f"driver_{i}" in scores.columns]


def check_families(scores: pl.DataFrame, families: Mapping[str, str]) -> None:
    """Every driver feature must have a declared, known family (a typo would silently route
    customers to ``none``)."""
    drivers: set[str] = set()
    for i in _driver_columns(scores):
        drivers |= set(scores[f"driver_{i}"].drop_nulls().unique().to_list())
    missing = sorted(d for d in drivers if d not in families)
    if missing:
        raise ValueError(f"driver features without a reason family: {missing}")
    unknown = sorted({f for f in families.values() if f not in REASON_FAMILIES})
    if unknown:
        raise ValueError(f"unknown reason families {unknown}; known: {list(REASON_FAMILIES)}")


def main_reasons(scores: pl.DataFrame, families: Mapping[str, str]) -> pl.DataFrame:
    """customer_id, reason_feature, reason_value, reason_shap, reason_family per scored row."""
    check_families(scores, families)
    n = scores.height
    feature = np.full(n, None, dtype=object)
    value = np.full(n, None, dtype=object)
    shap = np.full(n, np.nan)
    for i in reversed(_driver_columns(scores)):  # the first positive driver wins: go backwards
        contribution = scores[f"driver_{i}_shap"].fill_null(np.nan).to_numpy()
        positive = np.nan_to_num(contribution, nan=-1.0) > 0
        feature[positive] = np.asarray(scores[f"driver_{i}"].to_list(), dtype=object)[positive]
        if f"driver_{i}_value" in scores.columns:
            raw = np.asarray(scores[f"driver_{i}_value"].cast(pl.String).to_list(), dtype=object)
            value[positive] = raw[positive]
        shap[positive] = contribution[positive]
    family = [families[f] if f is not None else NO_REASON for f in feature]
    return pl.DataFrame(
        {
            "customer_id": scores["customer_id"].cast(pl.String),
            "reason_feature": pl.Series(feature.tolist(), dtype=pl.String),
            "reason_value": pl.Series(value.tolist(), dtype=pl.String),
            "reason_shap": pl.Series(shap).fill_nan(None),
            "reason_family": family,
        }
    )


def customer_table(
    scores: pl.DataFrame,
    values: pl.DataFrame,
    families: Mapping[str, str],
    labels: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The month's decision table: one row per scored customer.

    ``scores``: one observation date of ``<ds>_monitoring.scores`` (customer_id,
    churn_probability, risk_decile, driver_1..3, driver_1..3_value, driver_1..3_shap).
    ``values``: customer_id, value (from :mod:`.value`). ``labels`` (optional): customer_id,
    churned (NULL while immature), is_mature. Every scored customer must have a value.
    """
    if scores["customer_id"].n_unique() != scores.height:
        raise ValueError("scores hold one observation date: customer_id must be unique")
    base = scores.with_columns(pl.col("customer_id").cast(pl.String))
    keep = [c for c in ("observation_date", "customer_id", "churn_probability", "risk_decile")]
    keep = [c for c in keep if c in base.columns]
    table = base.select(keep).join(
        main_reasons(base, families), on="customer_id", how="left", maintain_order="left"
    )
    table = table.join(
        values.select(pl.col("customer_id").cast(pl.String), pl.col("value").cast(pl.Float64)),
        on="customer_id",
        how="left",
        maintain_order="left",
    )
    missing = table.filter(pl.col("value").is_null()).height
    if missing:
        raise ValueError(f"{missing} scored customers have no value")
    tiers, _ = value_tiers(table["value"].to_numpy())
    table = table.with_columns(value_tier=pl.Series(tiers, dtype=pl.String))
    if labels is not None:
        table = table.join(
            labels.select(
                pl.col("customer_id").cast(pl.String),
                pl.col("churned").cast(pl.Int8),
                pl.col("is_mature").cast(pl.Boolean),
            ),
            on="customer_id",
            how="left",
            maintain_order="left",
        ).with_columns(pl.col("is_mature").fill_null(False))
    else:
        table = table.with_columns(
            churned=pl.lit(None, dtype=pl.Int8), is_mature=pl.lit(False, dtype=pl.Boolean)
        )
    return table.with_columns(revenue_at_risk=pl.col("churn_probability") * pl.col("value"))


def cohort_table(customers: pl.DataFrame) -> pl.DataFrame:
    """Risk decile × value tier × reason family, from a :func:`customer_table`.

    Columns: risk_decile, value_tier, reason_family, customers, mean_churn_probability,
    total_value, revenue_at_risk, mature_customers, realized_churn_rate, calibration_gap.
    Sorted by revenue at risk, largest first.
    """
    mature = pl.col("is_mature") & pl.col("churned").is_not_null()
    return (
        customers.group_by("risk_decile", "value_tier", "reason_family")
        .agg(
            customers=pl.len(),
            mean_churn_probability=pl.col("churn_probability").mean(),
            total_value=pl.col("value").sum(),
            revenue_at_risk=(pl.col("churn_probability") * pl.col("value")).sum(),
            mature_customers=mature.sum(),
            realized_churn_rate=pl.col("churned").filter(mature).cast(pl.Float64).mean(),
            mature_predicted=pl.col("churn_probability").filter(mature).mean(),
        )
        .with_columns(
            calibration_gap=pl.col("realized_churn_rate") - pl.col("mature_predicted"),
        )
        .drop("mature_predicted")
        .sort(["revenue_at_risk", "risk_decile"], descending=True)
    )


def cohort_grid(cohorts: pl.DataFrame, measure: str = "revenue_at_risk") -> pl.DataFrame:
    """Risk decile (rows, 10 first) × value tier (columns low, mid, high): ``measure`` summed
    over reason families; the heatmap of the report."""
    grid = (
        cohorts.group_by("risk_decile", "value_tier")
        .agg(pl.col(measure).sum())
        .pivot(on="value_tier", index="risk_decile", values=measure)
    )
    for tier in VALUE_TIERS:
        if tier not in grid.columns:
            grid = grid.with_columns(pl.lit(0.0).alias(tier))
    return grid.select(
        "risk_decile", *[pl.col(t).cast(pl.Float64).fill_null(0.0) for t in VALUE_TIERS]
    ).sort("risk_decile", descending=True)
