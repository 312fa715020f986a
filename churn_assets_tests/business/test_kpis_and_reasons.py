"""KPI computations against a hand-built case; reason sentences."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from churn_assets.lib.business.kpis import KPI_DEFINITIONS, campaign_kpis, monthly_kpis
from churn_assets.lib.business.reasons import (
    feature_label,
    format_value,
    reason_sentence,
    top_reasons,
)


def test_monthly_kpis_by_hand():
    may, june = date(2011, 5, 1), date(2011, 6, 1)
    customers = pl.DataFrame(
        {
            "observation_date": [may] * 4 + [june] * 2,
            "churn_probability": [0.9, 0.5, 0.3, 0.1, 0.4, 0.2],
            # May's deciles (against the training scores) leave decile 10 empty, as a
            # low-churn season does: the capture still ranks within the month.
            "risk_decile": [9, 7, 4, 1, 10, 1],
            "value": [100.0, 200.0, 300.0, 400.0, 50.0, 50.0],
            "churned": [1, 1, 0, 0, 1, None],
            "is_mature": [True, True, True, True, True, False],
        }
    )
    out = monthly_kpis(customers)
    m, j = out.iter_rows(named=True)
    assert m["customers_scored"] == 4 and m["mature_customers"] == 4
    assert m["predicted_churn_rate"] == pytest.approx(0.45)
    assert m["monthly_churn_rate"] == 0.5 and m["retention_rate"] == 0.5
    assert m["revenue_at_risk"] == pytest.approx(90 + 100 + 90 + 40)
    assert m["top_decile_capture"] == 0.5  # 1 of the 2 churners is the month's riskiest 10%
    # June is not fully mature: no realized figures yet, never a partial rate.
    assert j["monthly_churn_rate"] is None and j["top_decile_capture"] is None
    assert j["revenue_at_risk"] == pytest.approx(30.0)


def test_kpi_definitions_cover_every_kpi_shown():
    shown = set(
        monthly_kpis(
            pl.DataFrame(
                schema={
                    "observation_date": pl.Date,
                    "churn_probability": pl.Float64,
                    "risk_decile": pl.Int64,
                    "value": pl.Float64,
                    "churned": pl.Int8,
                    "is_mature": pl.Boolean,
                }
            )
        ).columns
    ) - {"observation_date", "mature_customers"}
    assert shown <= set(KPI_DEFINITIONS)
    summary = {
        f"expected_{k}_{s}": 1.0
        for k in ("saved_revenue", "net_value")
        for s in ("low", "mid", "high")
    }
    assert {k.rsplit("_", 1)[0] for k in campaign_kpis(summary)} <= set(KPI_DEFINITIONS)


def test_reason_sentences():
    assert (
        reason_sentence("revenue_180d", "120.5", 0.1234, "spend", reference=450.0)
        == "spend in the last 180 days is low, +0.12"
    )
    assert (
        reason_sentence("recency_days", 200, 0.31, "recency", reference=40.0)
        == "days since the last purchase is high, +0.31"
    )
    assert reason_sentence("orders_90d", "2", 0.05, "frequency") == (
        "orders in the last 90 days is 2, +0.05"
    )
    assert reason_sentence("contract", "Month-to-month", 0.45, "contract") == (
        "contract is Month-to-month, +0.45"
    )
    assert reason_sentence("tenure_days", None, 0.2, "frequency") == (
        "days since the first purchase raises the churn risk, +0.20"
    )
    assert reason_sentence("", None, 0.0, "none") == "no risk-raising driver among the top three"
    assert feature_label("n_calls_30d", None, "service") == (
        "number of calls in the last 30 days (service)"
    )
    assert feature_label("log_tenure_x_log_monthly_charges") == (
        "tenure (log) × monthly charges (log)"
    )
    assert feature_label("senior_citizen", "1 for a senior citizen.") == "senior citizen"
    assert (
        feature_label(
            "charge_per_tenure_month",
            "Total charges / tenure; the monthly charge when tenure is 0.",
        )
        == "charge per tenure month"  # a formula reads worse than the name
    )
    assert feature_label("tenure_bucket", "Tenure band: 00-12, 13-24 months.") == "tenure band"
    assert format_value(12345.678) == "12,346" and format_value(2.50) == "2.5"


def test_top_reasons_ranks_by_revenue_at_risk():
    customers = pl.DataFrame(
        {
            "reason_feature": ["revenue_180d", "revenue_180d", "recency_days", None],
            "reason_value": ["100", "300", "90", None],
            "reason_shap": [0.1, 0.3, 0.5, None],
            "reason_family": ["spend", "spend", "recency", "none"],
            "churn_probability": [0.5, 0.5, 0.9, 0.9],
            "value": [1000.0, 1000.0, 100.0, 5000.0],
        }
    )
    out = top_reasons(customers, references={"revenue_180d": 500.0, "recency_days": 30.0})
    assert out["feature"].to_list() == ["revenue_180d", "recency_days"]
    assert out["reason"].to_list() == [
        "spend in the last 180 days is low, +0.20",
        "days since the last purchase is high, +0.50",
    ]
    assert out["customers"].to_list() == [2, 1]
    assert out["share_of_customers"][0] == 0.5
    assert out["revenue_at_risk"][0] == pytest.approx(1000.0)
