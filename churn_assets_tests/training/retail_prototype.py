"""A stand-in for the feature store's retail snapshot, built straight from the raw events.

Used only to measure what the training stage reaches on real retail data before the feature
store lands (``python -m churn_assets_tests.training.measure``); the real graph consumes the
``retail_training_set`` asset instead.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

FEATURES_SQL = """
WITH lines AS (
    SELECT DISTINCT invoice, stock_code, quantity, invoice_ts, unit_price, customer_id
    FROM read_parquet($events) WHERE customer_id IS NOT NULL
),
invoices AS (
    SELECT customer_id, invoice, min(invoice_ts) AS ts,
           sum(CASE WHEN quantity > 0 THEN quantity * unit_price ELSE 0 END) AS revenue,
           sum(CASE WHEN quantity < 0 THEN -quantity * unit_price ELSE 0 END) AS returned,
           count(DISTINCT stock_code)::DOUBLE AS products,
           bool_or(invoice LIKE 'C%') AS is_return
    FROM lines GROUP BY ALL
),
dates AS (
    SELECT unnest(generate_series(DATE '2010-03-01', DATE '2011-09-01', INTERVAL 1 MONTH))::DATE AS t
),
history AS (
    SELECT d.t, i.*, date_diff('day', i.ts::DATE, d.t) AS age
    FROM dates d JOIN invoices i ON i.ts < d.t
),
purchases AS (SELECT * FROM history WHERE NOT is_return),
gaps AS (
    SELECT t, customer_id,
           date_diff('day', lag(ts) OVER (PARTITION BY t, customer_id ORDER BY ts), ts) AS gap
    FROM purchases
),
gap_stats AS (
    SELECT t, customer_id, avg(gap) AS ipt_mean, coalesce(stddev_samp(gap), 0) AS ipt_std
    FROM gaps GROUP BY ALL
),
agg AS (
    SELECT t, customer_id,
        min(age) FILTER (WHERE NOT is_return) AS recency_days,
        max(age) AS tenure_days,
        count(*) FILTER (WHERE NOT is_return) AS frequency_lifetime,
        sum(revenue) AS monetary_lifetime,
        sum(returned) AS returns_lifetime,
        count(*) FILTER (WHERE NOT is_return AND age <= 30) AS invoices_30d,
        count(*) FILTER (WHERE NOT is_return AND age <= 60) AS invoices_60d,
        count(*) FILTER (WHERE NOT is_return AND age <= 90) AS invoices_90d,
        coalesce(sum(revenue) FILTER (WHERE age <= 30), 0) AS revenue_30d,
        coalesce(sum(revenue) FILTER (WHERE age <= 60), 0) AS revenue_60d,
        coalesce(sum(revenue) FILTER (WHERE age <= 90), 0) AS revenue_90d,
        coalesce(sum(returned) FILTER (WHERE age <= 30), 0) AS returns_30d,
        coalesce(sum(returned) FILTER (WHERE age <= 60), 0) AS returns_60d,
        coalesce(sum(returned) FILTER (WHERE age <= 90), 0) AS returns_90d,
        coalesce(sum(products) FILTER (WHERE age <= 30), 0) AS products_30d,
        coalesce(sum(products) FILTER (WHERE age <= 60), 0) AS products_60d,
        coalesce(sum(products) FILTER (WHERE age <= 90), 0) AS products_90d,
        count(*) FILTER (WHERE NOT is_return AND age <= 365) AS invoices_365d
    FROM history GROUP BY ALL
),
labels AS (
    SELECT d.t, i.customer_id, true AS bought
    FROM dates d JOIN invoices i
      ON NOT i.is_return AND i.ts >= d.t AND i.ts < d.t + INTERVAL 90 DAY
    GROUP BY ALL
)
SELECT a.customer_id, a.t AS observation_date,
       a.* EXCLUDE (t, customer_id),
       (a.invoices_30d + 1) / (a.invoices_60d - a.invoices_30d + 1) AS trend_invoices,
       (a.revenue_30d + 1) / (a.revenue_60d - a.revenue_30d + 1) AS trend_revenue,
       a.monetary_lifetime / greatest(a.frequency_lifetime, 1) AS avg_basket,
       coalesce(g.ipt_mean, a.tenure_days) AS ipt_mean, coalesce(g.ipt_std, 0) AS ipt_std,
       CASE WHEN l.bought THEN 0 ELSE 1 END AS churned
FROM agg a
LEFT JOIN gap_stats g USING (t, customer_id)
LEFT JOIN labels l USING (t, customer_id)
WHERE a.invoices_90d > 0
ORDER BY observation_date, customer_id
"""


def build_retail_frame(events: Path) -> pl.DataFrame:
    """One row per (customer active in the last year, monthly observation date)."""
    con = duckdb.connect()
    try:
        return pl.from_arrow(con.sql(FEATURES_SQL, params={"events": str(events)}).to_arrow_table())
    finally:
        con.close()
