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
