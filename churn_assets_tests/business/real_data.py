"""Read the pre-refactor retail table (read-only) as canonical events.

The baseline build (/work/baseline/churn.duckdb) still holds ``raw.retail_transactions`` in the
old shape (invoice, stock_code, quantity, invoice_ts, unit_price, integer customer_id,
country). This maps it to the canonical events columns the business layer reads, with the
staging model's rules: rows without a customer and bad-debt adjustments ("A" invoices) are
dropped, "C" invoices are cancellations, other negative quantities returns, amount =
quantity × unit_price.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

BASELINE_DB = Path(os.environ.get("CHURN_BASELINE_DUCKDB", "/work/baseline/churn.duckdb"))

EVENTS_SQL = """
SELECT
    CAST(customer_id AS VARCHAR) AS customer_id,
    invoice_ts AS event_ts,
    invoice AS order_id,
    quantity * unit_price AS amount,
    CASE
        WHEN invoice LIKE 'C%' THEN 'cancellation'
        WHEN quantity < 0 THEN 'return'
        ELSE 'purchase'
    END AS event_type
FROM raw.retail_transactions
WHERE customer_id IS NOT NULL
    AND invoice NOT LIKE 'A%'
    AND quantity <> 0
    AND invoice_ts < ?
"""


def retail_events(until: date | None = None) -> pl.DataFrame:
    """Canonical retail events with ``event_ts < until`` (all of them by default)."""
    with duckdb.connect(str(BASELINE_DB), read_only=True) as con:
        return con.sql(EVENTS_SQL, params=[until or date(9999, 1, 1)]).pl()


def retail_month(observation_date: date) -> dict[str, pl.DataFrame]:
    """Scores, labels and trailing 90-day revenue of one month of the baseline build.

    Scores carry the old table's columns (no driver values: NULL); customer ids become text.
    """
    with duckdb.connect(str(BASELINE_DB), read_only=True) as con:
        scores = con.sql(
            """
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, observation_date,
                   churn_probability, risk_decile,
                   driver_1, CAST(NULL AS VARCHAR) AS driver_1_value, driver_1_shap,
                   driver_2, CAST(NULL AS VARCHAR) AS driver_2_value, driver_2_shap,
                   driver_3, CAST(NULL AS VARCHAR) AS driver_3_value, driver_3_shap
            FROM monitoring.retail_scores WHERE observation_date = ?
            """,
            params=[observation_date],
        ).pl()
        labels = con.sql(
            """
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, churned, is_mature
            FROM features.fct_retail_labels WHERE observation_date = ?
            """,
            params=[observation_date],
        ).pl()
        trailing = con.sql(
            """
            SELECT CAST(customer_id AS VARCHAR) AS customer_id, revenue_90d AS trailing_revenue
            FROM features.fct_retail_features WHERE observation_date = ?
            """,
            params=[observation_date],
        ).pl()
    return {"scores": scores, "labels": labels, "trailing": trailing}


def retail_families(features: list[str]) -> dict[str, str]:
    """Reason family of the baseline's (old-named) retail features, by name pattern."""
    out = {}
    for f in features:
        if f in ("observation_month", "invoices_prior_year_horizon", "orders_prior_year_horizon"):
            out[f] = "season"
        elif f.startswith(("recency", "max_gap", "n_lapses")):
            out[f] = "recency"
        elif f.startswith(("returns_", "return_value_")):
            out[f] = "returns"
        elif f.startswith(("revenue", "lifetime_revenue", "avg_")):
            out[f] = "spend"
        else:
            out[f] = "frequency"
    return out
