"""Tiny hand-built files for the feature-store tests, in the bundled datasets' own shapes.

They go through the real contracts (the retail events parquet, the Telco CSV) into the raw
tables, then through the real dbt models. The observation range used with them is
2011-01-01 .. 2011-06-01 (monthly), horizon 90 days. The last event is 2011-06-15 12:00, so
labels at T <= 2011-03-01 are mature, later ones are not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from churn_assets.defs.sources.raw import LOAD_TABLE, load_record
from churn_assets.lib.contracts import read_file
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import replace_tables
from churn_assets.lib.ingest import FileReport

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


# The engine-parity and incremental fixture: BASE_LINES plus the edges an engine port gets wrong
# (leap day, month and year ends at 23:59 and midnight, returns that are not cancellations,
# repeated products inside a window, a lapse, money with three decimals, another line without a
# customer), observed monthly over 2011-01-01 .. 2012-05-01. Its "landing month" (May 2012)
# arrives later, with a late correction to 2011-09-15 and the withdrawal of the only line of
# 2011-03-20: together they are PARITY_FINAL_LINES, observed up to 2012-06-01.
PARITY_OBSERVATION = ("2011-01-01", "2012-05-01")
PARITY_FINAL_OBSERVATION = ("2011-01-01", "2012-06-01")
CORRECTED_DAY = "2011-09-15"
WITHDRAWN_DAY = "2011-03-20"
UNTOUCHED_DAY = "2011-08-05"
PARITY_LINES: tuple[Line, ...] = (
    *BASE_LINES,
    # customer 10: leap day and month ends; at T = 2012-03-01, T - 30d = 2012-01-31 00:00
    Line("1000", "A", 2, "2012-02-29 10:00", 3.0, 10),
    Line("1001", "B", 1, "2012-02-28 23:59", 4.0, 10),
    Line("1002", "A", 1, "2012-03-01 00:00", 5.0, 10),
    Line("1003", "C", 3, "2011-12-31 23:59", 2.5, 10),
    Line("1004", "A", 1, "2012-01-31 00:00", 1.0, 10),
    Line("1005", "D", 2, "2011-11-30 23:59", 7.25, 10),
    Line("1006", "A", -1, "2012-03-05 12:00", 3.0, 10),  # a return, not a cancellation
    # customer 11: one purchase, at midnight on a month end
    Line("1100", "A", 1, "2011-08-31 00:00", 9.99, 11),
    # customer 12: a cancelled order, a purchase exactly at T, a return
    Line("1200", "A", 5, f"{CORRECTED_DAY} 14:00", 2.0, 12),
    Line("C1201", "A", -5, "2011-09-16 09:00", 2.0, 12),
    Line("1202", "B", 2, "2011-10-01 00:00", 6.0, 12),
    Line("1203", "B", -1, "2011-10-20 10:00", 6.0, 12),
    Line("1204", "E", 1, "2011-12-01 00:00", 10.0, 12),
    # customer 13: the same products again and again (distinct products), two lines per order
    Line("1300", "P", 1, "2011-06-01 08:00", 1.0, 13),
    Line("1301", "P", 1, "2011-06-20 08:00", 1.0, 13),
    Line("1302", "P", 1, f"{UNTOUCHED_DAY} 08:00", 1.0, 13),
    Line("1303", "Q", 1, f"{UNTOUCHED_DAY} 08:00", 2.0, 13),
    Line("1304", "P", 1, "2011-09-30 23:59", 1.0, 13),
    Line("1304", "Q", 2, "2011-09-30 23:59", 2.0, 13),
    # customer 14: lapses of more than 90 days; its 2011-03-20 line is withdrawn later
    Line("1400", "A", 1, "2011-01-02 00:00", 4.0, 14),
    Line("1499", "A", 1, f"{WITHDRAWN_DAY} 10:00", 2.0, 14),
    Line("1401", "A", 1, "2011-07-01 00:00", 4.0, 14),
    Line("1402", "B", 1, "2012-04-30 23:59", 8.0, 14),
    # customer 15: amounts with three decimals
    Line("1500", "A", 3, "2011-11-11 11:11", 1.255, 15),
    Line("1501", "B", 7, "2012-01-15 15:15", 0.333, 15),
    # no customer, on the leap day
    Line("1600", "A", 1, "2012-02-29 12:00", 5.0, None),
)
LANDING_LINES: tuple[Line, ...] = (
    Line("1403", "B", 2, "2012-05-03 10:00", 8.0, 14),
    Line("1700", "A", 1, "2012-05-20 12:00", 5.0, 17),
)


def parity_final_lines() -> tuple[Line, ...]:
    """PARITY_LINES after the landing month: its lines added, CORRECTED_DAY's purchase changed,
    WITHDRAWN_DAY's only line gone."""
    corrected = tuple(
        replace(line, quantity=6) if line.invoice == "1200" else line
        for line in PARITY_LINES
        if not line.ts.startswith(WITHDRAWN_DAY)
    )
    return corrected + LANDING_LINES


TELCO_ROWS = (
    # customer_id, contract, tenure, monthly, total ("" = blank), internet, addons Yes, payment, churn
    ("0001-AAAAA", "Month-to-month", 0, 50.0, "", "DSL", 0, "Electronic check", "No"),
    ("0002-BBBBB", "Month-to-month", 1, 70.0, "70", "Fiber optic", 2, "Mailed check", "Yes"),
    ("0003-CCCCC", "One year", 30, 80.0, "2400", "Fiber optic", 4, "Credit card (automatic)", "No"),
    ("0004-DDDDD", "Two year", 72, 20.0, "1440", "No", 0, "Bank transfer (automatic)", "No"),
)
ADDONS = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)


def _invoice(invoice: str) -> str:
    """The fixture's short invoice numbers in the retailer's six-digit format."""
    prefix = invoice[0] if invoice[0].isalpha() else ""
    return f"{prefix}{int(invoice[len(prefix) :]):06d}"


def retail_file(path: Path, lines: tuple[Line, ...]) -> Path:
    """The lines as an Online Retail II events parquet (the retailer's own column names)."""
    pl.DataFrame(
        {
            "invoice": [_invoice(line.invoice) for line in lines],
            "stock_code": [line.stock_code for line in lines],
            "description": [None for _ in lines],
            "quantity": [line.quantity for line in lines],
            "invoice_ts": [datetime.fromisoformat(line.ts) for line in lines],
            "unit_price": [line.unit_price for line in lines],
            "customer_id": [line.customer_id for line in lines],
            "country": ["United Kingdom" for _ in lines],
        },
        schema_overrides={"customer_id": pl.Int32, "quantity": pl.Int32, "description": pl.String},
    ).write_parquet(path)
    return path


def telco_file(path: Path) -> Path:
    """The customers as a Telco CSV (IBM's column names)."""
    header = [
        "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure",
        "PhoneService", "MultipleLines", "InternetService", *ADDONS, "Contract",
        "PaperlessBilling", "PaymentMethod", "MonthlyCharges", "TotalCharges", "Churn",
    ]  # fmt: skip
    lines = [",".join(header)]
    for cid, contract, tenure, monthly, total, internet, n_yes, pay, churn in TELCO_ROWS:
        none = "No internet service" if internet == "No" else "No"
        addons = ["Yes" if i < n_yes else none for i in range(len(ADDONS))]
        values = [
            cid, "Female", "0", "Yes", "No", str(tenure), "Yes", "No", internet, *addons,
            contract, "Yes", pay, str(monthly), total, churn,
        ]  # fmt: skip
        lines.append(",".join(f'"{v}"' if "," in v else v for v in values))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_raw(db_path: Path, specs: dict[str, DatasetSpec], lines: tuple[Line, ...]) -> None:
    """Both datasets' raw tables from the fixture files, through the real contracts."""
    files = {
        "retail": retail_file(db_path.with_suffix(".parquet"), lines),
        "telco": telco_file(db_path.with_suffix(".csv")),
    }
    con = duckdb.connect(str(db_path))
    try:
        for name, path in files.items():
            spec = specs[name]
            frame = read_file(spec, path)
            loaded = load_record([FileReport(str(path), frame.height, frame.height, 0)])
            replace_tables(con, spec.db_schema("raw"), {spec.raw_table: frame, LOAD_TABLE: loaded})
    finally:
        con.close()
