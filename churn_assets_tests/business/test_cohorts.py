"""Customer table and cohort map: tiers, main reasons, totals that add up."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churn_assets.lib.business.cohorts import (
    NO_REASON,
    cohort_grid,
    cohort_table,
    customer_table,
    main_reasons,
    value_tiers,
)
from churn_assets_tests.business.fixtures import FAMILIES, synthetic_month


def test_value_tiers_use_tertile_edges_and_keep_ties_together():
    tiers, edges = value_tiers(np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9]))
    assert tiers == ["low"] * 3 + ["mid"] * 3 + ["high"] * 3
    assert edges == pytest.approx((11 / 3, 19 / 3))
    tied, _ = value_tiers(np.array([0.0, 0, 0, 0, 0, 5, 9]))
    assert tied[:5] == ["low"] * 5  # equal values never split across tiers


def _scores(**columns):
    return pl.DataFrame(
        {"customer_id": [str(i) for i in range(len(columns["driver_1"]))]} | columns
    )


def test_main_reason_is_the_strongest_risk_raising_driver():
    scores = _scores(
        driver_1=["revenue_180d", "recency_days", "tenure_days"],
        driver_1_value=["10", "50", "300"],
        driver_1_shap=[-0.30, 0.40, -0.10],
        driver_2=["recency_days", "revenue_180d", "recency_days"],
        driver_2_value=["100", "20", "5"],
        driver_2_shap=[0.20, 0.10, -0.05],
        driver_3=["orders_90d", "orders_90d", "orders_90d"],
        driver_3_value=["1", "2", "3"],
        driver_3_shap=[0.10, 0.05, -0.01],
    )
    reasons = main_reasons(scores, FAMILIES)
    assert reasons["reason_feature"].to_list() == ["recency_days", "recency_days", None]
    assert reasons["reason_value"].to_list() == ["100", "50", None]
    assert reasons["reason_shap"].to_list() == [0.20, 0.40, None]
    assert reasons["reason_family"].to_list() == ["recency", "recency", NO_REASON]


def test_unknown_driver_or_family_is_an_error_not_a_silent_none():
    scores = _scores(driver_1=["mystery_feature"], driver_1_shap=[0.5])
    with pytest.raises(ValueError, match="mystery_feature"):
        main_reasons(scores, FAMILIES)
    with pytest.raises(ValueError, match="unknown reason families"):
        main_reasons(_scores(driver_1=["x"], driver_1_shap=[0.5]), {"x": "vibes"})


def test_every_scored_customer_needs_a_value():
    month = synthetic_month(50, seed=1)
    with pytest.raises(ValueError, match="3 scored customers have no value"):
        customer_table(month["scores"], month["values"].slice(3), FAMILIES)


def test_cohort_totals_reconcile_with_customers():
    month = synthetic_month(3000, seed=2)
    customers = customer_table(month["scores"], month["values"], FAMILIES, month["labels"])
    assert customers.height == 3000
    cohorts = cohort_table(customers)
    assert cohorts["customers"].sum() == 3000
    assert cohorts["revenue_at_risk"].sum() == pytest.approx(
        float((customers["churn_probability"] * customers["value"]).sum()), rel=1e-12
    )
    assert cohorts["total_value"].sum() == pytest.approx(float(customers["value"].sum()))
    grid = cohort_grid(cohorts)
    assert grid["risk_decile"].to_list() == list(range(10, 0, -1))
    assert float(grid.select(pl.sum_horizontal("low", "mid", "high")).sum().item()) == (
        pytest.approx(cohorts["revenue_at_risk"].sum())
    )


def test_realized_churn_and_calibration_gap_on_mature_labels_only():
    scores = _scores(
        churn_probability=[0.8, 0.6, 0.4, 0.2],
        risk_decile=[10, 10, 10, 10],
        driver_1=["recency_days"] * 4,
        driver_1_value=["1"] * 4,
        driver_1_shap=[0.3] * 4,
    )
    values = pl.DataFrame({"customer_id": ["0", "1", "2", "3"], "value": [10.0, 10, 10, 10]})
    labels = pl.DataFrame(
        {"customer_id": ["0", "1", "2"], "churned": [1, 0, None], "is_mature": [True, True, False]}
    )
    cohorts = cohort_table(customer_table(scores, values, FAMILIES, labels))
    row = cohorts.row(0, named=True)
    assert (row["customers"], row["mature_customers"]) == (4, 2)
    assert row["realized_churn_rate"] == 0.5
    assert row["calibration_gap"] == pytest.approx(0.5 - 0.7)  # realized - mean p of matured
    assert row["revenue_at_risk"] == pytest.approx(20.0)
    unlabelled = cohort_table(customer_table(scores, values, FAMILIES))
    assert unlabelled["realized_churn_rate"].to_list() == [None]
