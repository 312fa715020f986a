"""Tiny hand-built raw tables for the feature-store tests, in the lead's ``raw`` contract.

The observation range used with them is 2011-01-01 .. 2011-06-01 (monthly), horizon 90 days.
The last event is 2011-06-15 12:00, so labels at T <= 2011-03-01 are mature, later ones are not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb

OBSERVATION_START = "2011-01-01"
OBSERVATION_END = "2011-06-01"
HORIZON_DAYS = 90


@dataclass(frozen=True)
class Line:
    invoice: str
    stock_code: str
    quantity: int
    ts: str  # "YYYY-MM-DD HH:MM"
    unit_price: float
    customer_id: int | None


# Customer 1 is the window-edge customer, observed at T = 2011-04-01:
#   T - 30d = 2011-03-02 00:00 (in the 30-day window), T itself (in no window),
#   T - 90d - 1 minute = 2010-12-31 23:59 (in no window), T - 60d = 2011-01-31 00:00 (60d, 90d),
#   T - 30d - 1 minute = 2011-03-01 23:59 (60d, 90d), a cancellation inside the 30-day window.
# Customers 2-4 pin the label edges, 6 has only returns, 7 marks the end of the data,
# 9 pins the long-window (180d, 365d, last year's horizon) edges.
BASE_LINES: tuple[Line, ...] = (
    Line("102", "C", 2, "2010-12-31 23:59", 5.0, 1),
    Line("103", "B", 3, "2011-01-31 00:00", 2.0, 1),
    Line("104", "A", 1, "2011-03-01 23:59", 1.0, 1),
    Line("100", "A", 1, "2011-03-02 00:00", 10.0, 1),
    Line("C105", "A", -1, "2011-03-10 10:00", 10.0, 1),
    Line("101", "D", 1, "2011-04-01 00:00", 1000.0, 1),
    # customer 2: a single purchase -> churns at 2011-02-01 and 2011-03-01
    Line("200", "A", 1, "2011-01-15 09:30", 3.0, 2),
    Line("200", "B", 2, "2011-01-15 09:30", 4.0, 2),
    # customer 3: next purchase exactly at T + 90d for T = 2011-01-01 -> churned at 2011-01-01
    Line("300", "A", 1, "2010-12-20 10:00", 5.0, 3),
    Line("301", "A", 1, "2011-04-01 00:00", 5.0, 3),
    # customer 4: next purchase one minute before T + 90d -> retained at 2011-01-01
    Line("400", "A", 1, "2010-12-20 10:00", 5.0, 4),
    Line("401", "A", 1, "2011-03-31 23:59", 5.0, 4),
    # no customer: dropped by staging
    Line("500", "A", 1, "2011-02-01 10:00", 5.0, None),
    # customer 6: returns only, never a purchase -> no feature rows
    Line("C600", "A", -1, "2011-02-01 10:00", 5.0, 6),
    # customer 9: long-window edges at T = 2011-04-01 (T - 365d = 2010-04-01, T - 275d =
    # 2010-06-30, T - 180d = 2010-10-03), one minute before and exactly at each edge
    Line("900", "A", 1, "2010-03-31 23:59", 1.0, 9),
    Line("901", "A", 1, "2010-04-01 00:00", 2.0, 9),
    Line("902", "B", 1, "2010-06-29 23:59", 4.0, 9),
    Line("903", "A", 1, "2010-06-30 00:00", 8.0, 9),
    Line("904", "C", 1, "2010-10-02 23:59", 16.0, 9),
    Line("905", "A", 1, "2010-10-03 00:00", 32.0, 9),
    # customer 7: the last event in the data
    Line("700", "A", 1, "2011-06-15 12:00", 5.0, 7),
)

# Events at or after T* = 2011-03-01 00:00 only: features at T <= T* must not move.
LEAKAGE_T = "2011-03-01"
FUTURE_LINES: tuple[Line, ...] = (
    Line("800", "A", 1, "2011-03-01 00:00", 9.0, 2),  # exactly at T*, inside customer 2's horizon
    Line("801", "Z", 5, "2011-03-01 00:00", 9.0, 8),  # a brand-new customer at T*
)


def perturbed_lines() -> tuple[Line, ...]:
    """BASE_LINES with an event after T* changed and FUTURE_LINES added."""
    changed = tuple(
        replace(line, quantity=7) if line.invoice == "104" else line for line in BASE_LINES
    )
    return changed + FUTURE_LINES


TELCO_ROWS = (
    # customer_id, contract, tenure, monthly, total, imputed, internet, addons Yes, payment, churn
    ("0001-A", "Month-to-month", 0, 50.0, 0.0, True, "DSL", 0, "Electronic check", False),
    ("0002-B", "Month-to-month", 1, 70.0, 70.0, False, "Fiber optic", 2, "Mailed check", True),
    (
        "0003-C",
        "One year",
        30,
        80.0,
        2400.0,
        False,
        "Fiber optic",
        4,
        "Credit card (automatic)",
        False,
    ),
    ("0004-D", "Two year", 72, 20.0, 1440.0, False, "No", 0, "Bank transfer (automatic)", False),
)
ADDONS = (
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
)


def write_raw(db_path: Path, lines: tuple[Line, ...]) -> None:
    """Create ``raw.retail_transactions`` and ``raw.telco_customers`` with the contract schema."""
    con = duckdb.connect(str(db_path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            """CREATE OR REPLACE TABLE raw.retail_transactions (
                event_id BIGINT, invoice VARCHAR, stock_code VARCHAR, description VARCHAR,
                quantity INTEGER, invoice_ts TIMESTAMP, unit_price DOUBLE, customer_id INTEGER,
                country VARCHAR, source_file VARCHAR)"""
        )
        con.executemany(
            "INSERT INTO raw.retail_transactions VALUES (?, ?, ?, NULL, ?, ?, ?, ?, 'UK', 'fixture')",
            [
                (
                    i,
                    line.invoice,
                    line.stock_code,
                    line.quantity,
                    datetime.fromisoformat(line.ts),
                    line.unit_price,
                    line.customer_id,
                )
                for i, line in enumerate(lines, start=1)
            ],
        )
        addon_columns = ", ".join(f"{name} VARCHAR" for name in ADDONS)
        con.execute(
            f"""CREATE OR REPLACE TABLE raw.telco_customers (
                customer_id VARCHAR, gender VARCHAR, senior_citizen INTEGER, partner VARCHAR,
                dependents VARCHAR, phone_service VARCHAR, multiple_lines VARCHAR,
                internet_service VARCHAR, {addon_columns}, contract VARCHAR,
                paperless_billing VARCHAR, payment_method VARCHAR, tenure INTEGER,
                monthly_charges DOUBLE, total_charges DOUBLE, total_charges_imputed BOOLEAN,
                churn BOOLEAN)"""
        )
        rows = []
        for (
            cid,
            contract,
            tenure,
            monthly,
            total,
            imputed,
            internet,
            n_yes,
            pay,
            churn,
        ) in TELCO_ROWS:
            none = "No internet service" if internet == "No" else "No"
            addons = ["Yes" if i < n_yes else none for i in range(len(ADDONS))]
            rows.append(
                (
                    cid,
                    "Female",
                    0,
                    "Yes",
                    "No",
                    "Yes",
                    "No",
                    internet,
                    *addons,
                    contract,
                    "Yes",
                    pay,
                    tenure,
                    monthly,
                    total,
                    imputed,
                    churn,
                )
            )
        con.executemany(f"INSERT INTO raw.telco_customers VALUES ({', '.join('?' * 22)})", rows)
    finally:
        con.close()
