"""Seeded synthetic events in the events contract (``<dataset>_raw.events``), generated inside
DuckDB so that 100M rows never pass through Python memory.

Randomness comes from ``hash(row, seed, salt)`` rather than ``random()``: DuckDB's ``random()``
is not reproducible under parallel execution, a hash of the row number is. Shape, loosely like
the real Online Retail II data: invoices of ~20 lines, skewed customer and product popularity,
~2% cancellation invoices, ~10% of invoices without a customer, minute-resolution timestamps
over two years.
"""

from __future__ import annotations

import duckdb

START = "2010-01-01"
DAYS = 730
LINES_PER_INVOICE = 20
N_PRODUCTS = 5000


def _uniform(expr: str, seed: int, salt: int) -> str:
    """A reproducible U[0, 1) value from a row key."""
    return f"(hash({expr}, {seed}, {salt}) % 1000000007) / 1000000007.0"


def generate(
    con: duckdb.DuckDBPyConnection,
    n_events: int,
    n_customers: int,
    seed: int = 42,
    schema: str = "bench_raw",
) -> None:
    """(Re)create ``<schema>.events`` with ``n_events`` rows, as the raw asset would load them."""
    invoice = f"(i // {LINES_PER_INVOICE})"
    u_customer = _uniform(invoice, seed, 1)
    u_minute = _uniform(invoice, seed, 2)
    u_cancel = _uniform(invoice, seed, 3)
    u_anonymous = _uniform(invoice, seed, 4)
    u_product = _uniform("i", seed, 5)
    u_quantity = _uniform("i", seed, 6)
    u_price = _uniform("i", seed, 7)
    cancelled = f"{u_cancel} < 0.02"
    quantity = f"CAST((1 + floor(12 * {u_quantity})) AS INTEGER) * CASE WHEN {cancelled} THEN -1 ELSE 1 END"
    price = f"round(0.1 + 20 * pow({u_price}, 3), 2)"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE {schema}.events AS
        SELECT
            CAST(i + 1 AS VARCHAR) AS event_id,
            CASE WHEN {u_anonymous} < 0.1 THEN NULL
                 ELSE CAST(CAST(floor({n_customers} * pow({u_customer}, 1.5)) AS INTEGER) + 10000
                      AS VARCHAR)
            END AS customer_id,
            TIMESTAMP '{START}' + to_minutes(CAST(floor({u_minute} * {DAYS} * 1440) AS BIGINT))
                AS event_ts,
            CASE WHEN {cancelled} THEN 'C' ELSE '' END || CAST(500000 + {invoice} AS VARCHAR)
                AS order_id,
            'P' || CAST(CAST(floor({N_PRODUCTS} * pow({u_product}, 2)) AS INTEGER) AS VARCHAR)
                AS product_id,
            {quantity} AS quantity,
            {price} AS unit_price,
            CAST({quantity} AS DOUBLE) * {price} AS amount,
            CASE WHEN {cancelled} THEN 'cancellation' ELSE 'purchase' END AS event_type,
            'United Kingdom' AS segment_country,
            NULL::VARCHAR AS exclude_reason,
            'synthetic' AS source_file
        FROM range({n_events}) AS t(i)
        """
    )
