"""TrainingSets for training tests, standing in for the feature store's snapshots.

``telco_training_set`` is what the feature store hands over for the bundled Telco declaration:
the real CSV read through the dataset's contract (:func:`read_file`), then every declared
feature computed with the declaration's own SQL, exactly as ``fct_snapshot_features`` does it
(in DuckDB instead of dbt). ``synthetic_retail_training_set`` is a small monthly panel with a
learnable signal so the out-of-time path runs in seconds.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from churn_assets.lib.contracts import LABEL, read_file
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.features_dbt import dbt_vars
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.training_set import (
    DATA_FILE,
    PROVENANCE_FILE,
    TrainingSet,
    unsupported_features,
)
from churn_assets.settings import ChurnSettings

RETAIL_NUMERIC = ("recency_days", "orders_90d", "revenue_90d", "observation_month")
RETAIL_CATEGORICAL = ("segment_country",)
RETAIL_MONTHS = 19
"""2010-03-01 .. 2011-09-01: the anchored out-of-time split tests on 2011-06 .. 2011-09 and
trains up to 2011-03, one label horizon (90 days) before."""


def _write(ts_dir: Path, frame: pl.DataFrame, provenance: dict[str, object]) -> None:
    ts_dir.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(ts_dir / DATA_FILE)
    (ts_dir / PROVENANCE_FILE).write_text(json.dumps(provenance))


def telco_spec() -> DatasetSpec:
    return load_declarations()["telco"]


def telco_frame(sample: int | None = None, seed: int = 0) -> pl.DataFrame:
    """customer_id, observation_date, every declared feature, churned: the training query's
    shape, computed from the real file by the declaration's contract and feature SQL."""
    spec = telco_spec()
    raw = read_file(spec, spec.source_files()[0])
    features = dbt_vars(spec)["snapshot_features"]
    selects = ", ".join(f"{f['sql']} AS {f['name']}" for f in features)
    with duckdb.connect() as con:
        con.register("customers", raw.to_arrow())
        frame = con.sql(
            f"SELECT customer_id, DATE '{spec.snap.snapshot_date}' AS observation_date, "
            f"CAST({LABEL} AS INTEGER) AS churned, {selects} "
            "FROM customers ORDER BY customer_id"
        ).pl()
    if sample is not None:
        frame = frame.sample(n=sample, seed=seed)
    return frame


def telco_training_set(root: Path, sample: int | None = None, version: str = "v1") -> TrainingSet:
    """Declared numeric and categorical features, less those this sample cannot support
    (as the training-set asset leaves them out)."""
    spec = telco_spec()
    frame = telco_frame(sample)
    features = feature_set(spec)
    excluded = unsupported_features(frame, features.names)
    path = root / "telco" / version
    _write(path, frame, {"dataset": "telco", "version": version, "rows": frame.height})
    return TrainingSet(
        "telco",
        version,
        path,
        tuple(n for n in features.numeric if n not in excluded),
        tuple(n for n in features.categorical if n not in excluded),
        excluded_features=excluded,
    )


def retail_months() -> list[date]:
    return [date(2010 + (2 + i) // 12, (2 + i) % 12 + 1, 1) for i in range(RETAIL_MONTHS)]


def synthetic_retail_frame(n_customers: int = 300, seed: int = 0) -> pl.DataFrame:
    """Monthly panel 2010-03 … 2011-09 whose churn depends on recency and frequency."""
    rng = np.random.default_rng(seed)
    ids = [f"{12346 + i}" for i in range(n_customers)]  # retail ids: 5-digit numbers as text
    rows = []
    for month in retail_months():
        recency = rng.exponential(60, n_customers)
        orders = rng.poisson(4, n_customers).astype(float)
        revenue = rng.gamma(2.0, 100.0, n_customers)
        logit = 0.025 * recency - 0.4 * orders + rng.normal(0, 1, n_customers)
        rows.append(
            pl.DataFrame(
                {
                    "customer_id": ids,
                    "observation_date": [month] * n_customers,
                    "churned": (logit > 0).astype(np.int32),
                    "recency_days": recency,
                    "orders_90d": orders,
                    "revenue_90d": revenue,
                    "observation_month": [month.month] * n_customers,
                    "segment_country": rng.choice(["UK", "DE", "FR"], n_customers),
                }
            )
        )
    return pl.concat(rows)


def retail_training_set_from(root: Path, frame: pl.DataFrame, version: str) -> TrainingSet:
    path = root / "retail" / version
    _write(path, frame, {"dataset": "retail", "version": version})
    numeric = tuple(c for c in RETAIL_NUMERIC if c in frame.columns)
    return TrainingSet("retail", version, path, numeric, RETAIL_CATEGORICAL)


def synthetic_retail_training_set(root: Path, version: str = "v1") -> TrainingSet:
    return retail_training_set_from(root, synthetic_retail_frame(), version)


def mlflow_template(folder: Path) -> Path:
    """An empty MLflow sqlite store with every migration applied, made once per process.

    Creating and migrating a store takes 3-10 s on this machine, more than most tests that use
    one; each test copies the template into its own home instead (:func:`seed_mlflow_store`).
    ``folder`` is the worker's pytest base temp: the training and monitoring conftests both ask
    for the template, and the second finds the first one's.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = folder / "mlflow_template"
    path = root / "mlflow.db"
    if not path.exists():
        root.mkdir(parents=True, exist_ok=True)
        store = SqlAlchemyStore(f"sqlite:///{root / 'building.db'}", str(root / "artifacts"))
        store.engine.dispose()
        (root / "building.db").rename(path)  # complete, or absent
    return path


def seed_mlflow_store(settings: ChurnSettings, template: Path) -> None:
    """Give a fresh project home its (empty) MLflow store from the template."""
    assert settings.mlflow_tracking_uri.startswith("sqlite:///"), settings.mlflow_tracking_uri
    target = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
