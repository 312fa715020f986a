"""TrainingSets for training tests, standing in for the feature store's snapshots.

``telco_training_set`` mirrors what the feature store is expected to hand over (19 raw columns
plus engineered ones); ``synthetic_retail_training_set`` is a small monthly panel with a
learnable signal so the out-of-time path runs in seconds.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from churn_assets.lib.training_set import DATA_FILE, PROVENANCE_FILE, TrainingSet
from churn_assets.settings import REPO_ROOT, TELCO_FILE

TELCO_CSV = REPO_ROOT / "data" / "raw" / TELCO_FILE
SERVICES = (
    "PhoneService",
    "MultipleLines",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)


def _write(ts_dir: Path, frame: pl.DataFrame, provenance: dict[str, object]) -> None:
    ts_dir.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(ts_dir / DATA_FILE)
    (ts_dir / PROVENANCE_FILE).write_text(json.dumps(provenance))


def telco_frame(sample: int | None = None, seed: int = 0) -> pl.DataFrame:
    raw = pl.read_csv(TELCO_CSV, infer_schema_length=0)
    frame = raw.select(
        pl.col("customerID").alias("customer_id"),
        pl.lit(date(2024, 1, 1)).alias("observation_date"),
        pl.col("SeniorCitizen").cast(pl.Int64),
        pl.col("tenure").cast(pl.Int64),
        pl.col("MonthlyCharges").cast(pl.Float64),
        pl.col("TotalCharges").str.strip_chars().replace("", "0").cast(pl.Float64),
        *[
            pl.col(c)
            for c in raw.columns
            if c
            not in (
                "customerID",
                "SeniorCitizen",
                "tenure",
                "MonthlyCharges",
                "TotalCharges",
                "Churn",
            )
        ],
        (pl.col("Churn") == "Yes").cast(pl.Int8).alias("churned"),
    )
    frame = frame.with_columns(
        pl.sum_horizontal([(pl.col(c) == "Yes").cast(pl.Int64) for c in SERVICES]).alias(
            "n_services"
        ),
        pl.col("tenure")
        .cut([6, 12, 24, 48], labels=["0-6", "7-12", "13-24", "25-48", "49+"])
        .cast(pl.String)
        .alias("tenure_bucket"),
        (pl.col("TotalCharges") / pl.col("tenure").clip(1)).alias("charge_per_tenure_month"),
        (pl.col("MonthlyCharges") / pl.col("MonthlyCharges").median().over("Contract")).alias(
            "contract_median_ratio"
        ),
    )
    if sample is not None:
        frame = frame.sample(n=sample, seed=seed)
    return frame


def telco_training_set(root: Path, sample: int | None = None, version: str = "v1") -> TrainingSet:
    frame = telco_frame(sample)
    numeric = (
        "SeniorCitizen",
        "tenure",
        "MonthlyCharges",
        "TotalCharges",
        "n_services",
        "charge_per_tenure_month",
        "contract_median_ratio",
    )
    reserved = {"customer_id", "observation_date", "churned", *numeric}
    categorical = tuple(c for c in frame.columns if c not in reserved)
    path = root / "telco" / version
    _write(path, frame, {"dataset": "telco", "version": version, "source": str(TELCO_CSV)})
    return TrainingSet("telco", version, path, numeric, categorical)


def synthetic_retail_frame(n_customers: int = 300, seed: int = 0) -> pl.DataFrame:
    """Monthly panel 2010-03 … 2011-09 whose churn depends on recency and frequency."""
    rng = np.random.default_rng(seed)
    months = [date(2010 + (2 + i) // 12, (2 + i) % 12 + 1, 1) for i in range(19)]
    rows = []
    for month in months:
        recency = rng.exponential(60, n_customers)
        frequency = rng.poisson(4, n_customers).astype(float)
        revenue = rng.gamma(2.0, 100.0, n_customers)
        logit = 0.025 * recency - 0.4 * frequency + rng.normal(0, 1, n_customers)
        rows.append(
            pl.DataFrame(
                {
                    "customer_id": np.arange(n_customers, dtype=np.int64),
                    "observation_date": [month] * n_customers,
                    "recency_days": recency,
                    "frequency_90d": frequency,
                    "revenue_90d": revenue,
                    "country": rng.choice(["UK", "DE", "FR"], n_customers),
                    "churned": (logit > 0).astype(np.int8),
                }
            )
        )
    return pl.concat(rows)


def synthetic_retail_training_set(root: Path, version: str = "v1") -> TrainingSet:
    path = root / "retail" / version
    _write(path, synthetic_retail_frame(), {"dataset": "retail", "version": version})
    return TrainingSet(
        "retail", version, path, ("recency_days", "frequency_90d", "revenue_90d"), ("country",)
    )
