"""A purchase log of another business, in another shape: the third dataset a user declares.

Acme sells subscriptions boxes in euros, 2022-2023. Its export has its own column names, ISO
timestamps with a UTC offset, no order id (each row is one order), SKUs, and a ``kind`` column
saying sale, refund or void. Customers buy at their own rhythm and stop at their own time, so
churn is learnable. Seeded: the same log every time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

START = datetime(2022, 1, 1)
DAYS = 730
SKUS = [f"BOX-{i:02d}" for i in range(12)]


def acme_log(n_customers: int = 260, seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, str, float, str, str]] = []
    for customer in range(n_customers):
        rate = rng.gamma(2.0, 0.03)  # purchases per day
        first = rng.uniform(0, 240)
        last = min(first + rng.exponential(320), DAYS)
        day = first
        while day < last:
            at = START + timedelta(days=float(day), hours=float(rng.uniform(7, 21)))
            stamp = at.strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"
            amount = round(float(rng.lognormal(3.2, 0.4)), 2)
            sku = SKUS[int(rng.integers(len(SKUS)))]
            rows.append((f"AC{customer:05d}", stamp, amount, sku, "sale"))
            if rng.random() < 0.06:
                rows.append((f"AC{customer:05d}", stamp, -amount, sku, "refund"))
            day += rng.exponential(1.0 / rate)
    return pl.DataFrame(
        rows, schema=["client", "placed_at", "total_eur", "sku", "kind"], orient="row"
    ).sort("placed_at")


def write_acme(folder: Path) -> Path:
    """The log as the CSV export a user would drop next to their declaration."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "acme_orders_2022_2023.csv"
    acme_log().write_csv(path)
    return path
