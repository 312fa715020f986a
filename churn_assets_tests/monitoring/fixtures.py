"""A small synthetic feature store in DuckDB, shaped exactly like the dbt marts.

Monitoring reads what the feature store and training produce; building those from the real
1M-row archive takes minutes, so these tests write ``features.fct_retail_features``,
``features.fct_retail_labels``, ``features.fct_retail_training_spine`` and a minimal
``raw.retail_transactions`` with the registry's real feature columns, then run the *real*
feature-month, training, scoring, drift and performance assets on them.

Churn depends on a latent engagement score that every feature reflects, so XGBoost learns
it in seconds. ``SHIFTED_MONTHS`` imitate the Nov–Dec peak: spend and activity triple and
recency shrinks, which must show up as drift.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import numpy as np
import polars as pl

from churn_assets.lib import features_registry
from churn_assets.partitions import observation_months

FEATURE_MODEL = "fct_retail_features"
NUMERIC = features_registry.numeric_features(FEATURE_MODEL)
MONTHS = [date.fromisoformat(k) for k in observation_months.get_partition_keys()]
SHIFTED_MONTHS = (date(2011, 11, 1), date(2011, 12, 1))
LAST_EVENT = datetime(2011, 12, 9, 12, 50)
HORIZON_DAYS = 90
CUSTOMERS = 300


def _month_rows(month: date, rng: np.random.Generator, shifted: bool) -> pl.DataFrame:
    engagement = rng.normal(size=CUSTOMERS)
    columns: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        noise = rng.normal(scale=0.5, size=CUSTOMERS)
        value = np.exp(1.0 + 0.6 * engagement + noise) * (1 + i % 3)
        if name.startswith(("recency", "interpurchase")):
            value = np.exp(3.5 - 0.7 * engagement + noise)
            value = value * (0.3 if shifted else 1.0)
        elif shifted:
            value = value * 3.0
        columns[name] = value
    churn_p = 1 / (1 + np.exp(0.8 + 1.6 * engagement))
    return pl.DataFrame(
        {
            "customer_id": np.arange(1, CUSTOMERS + 1, dtype=np.int32),
            "observation_date": [month] * CUSTOMERS,
            **columns,
            "churned": (rng.uniform(size=CUSTOMERS) < churn_p).astype(np.int32),
        }
    )


def synthetic_feature_store(seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.concat([_month_rows(m, rng, m in SHIFTED_MONTHS) for m in MONTHS])


def write_feature_store(path: str, frame: pl.DataFrame) -> None:
    """Create the marts the real assets read, with labels immature after LAST_EVENT - 90d."""
    mature = pl.col("observation_date").dt.offset_by(f"{HORIZON_DAYS}d") <= pl.lit(
        LAST_EVENT.date()
    )
    labels = frame.select(
        "customer_id",
        "observation_date",
        mature.alias("is_mature"),
        pl.when(mature).then(pl.col("churned")).otherwise(None).alias("churned"),
    )
    events = pl.DataFrame(
        {
            "invoice_ts": [datetime(2009, 12, 1, 7, 45), LAST_EVENT],
            "customer_id": [1, 2],
        }
    )
    con = duckdb.connect(path)
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS features")
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.register("f", frame.drop("churned").to_arrow())
        con.register("l", labels.to_arrow())
        con.register("e", events.to_arrow())
        con.execute("CREATE OR REPLACE TABLE features.fct_retail_features AS SELECT * FROM f")
        con.execute("CREATE OR REPLACE TABLE features.fct_retail_labels AS SELECT * FROM l")
        con.execute(
            "CREATE OR REPLACE TABLE features.fct_retail_training_spine AS "
            "SELECT customer_id, observation_date, churned FROM l WHERE churned IS NOT NULL"
        )
        con.execute("CREATE OR REPLACE TABLE raw.retail_transactions AS SELECT * FROM e")
    finally:
        con.close()
