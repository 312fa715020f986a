"""Seeded synthetic retail events in the ``raw.retail_transactions`` contract, generated inside
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
    con: duckdb.DuckDBPyConnection, n_events: int, n_customers: int, seed: int = 42
) -> None:
    """(Re)create ``raw.retail_transactions`` with ``n_events`` lines."""
    invoice = f"(i // {LINES_PER_INVOICE})"
    u_customer = _uniform(invoice, seed, 1)
    u_minute = _uniform(invoice, seed, 2)
    u_cancel = _uniform(invoice, seed, 3)
    u_anonymous = _uniform(invoice, seed, 4)
    u_product = _uniform("i", seed, 5)
    u_quantity = _uniform("i", seed, 6)
    u_price = _uniform("i", seed, 7)
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(
        f"""
        CREATE OR REPLACE TABLE raw.retail_transactions AS
        SELECT
            i + 1 AS event_id,
            CASE WHEN {u_cancel} < 0.02 THEN 'C' ELSE '' END || CAST(500000 + {invoice} AS VARCHAR)
                AS invoice,
            'P' || CAST(CAST(floor({N_PRODUCTS} * pow({u_product}, 2)) AS INTEGER) AS VARCHAR)
                AS stock_code,
            NULL::VARCHAR AS description,
            CAST((1 + floor(12 * {u_quantity})) AS INTEGER)
                * CASE WHEN {u_cancel} < 0.02 THEN -1 ELSE 1 END AS quantity,
            TIMESTAMP '{START}' + to_minutes(CAST(floor({u_minute} * {DAYS} * 1440) AS BIGINT))
                AS invoice_ts,
            round(0.1 + 20 * pow({u_price}, 3), 2) AS unit_price,
            CASE WHEN {u_anonymous} < 0.1 THEN NULL
                 ELSE CAST(floor({n_customers} * pow({u_customer}, 1.5)) AS INTEGER) + 10000
            END AS customer_id,
            'United Kingdom' AS country,
            'synthetic' AS source_file
        FROM range({n_events}) AS t(i)
        """
    )
