"""A small synthetic feature store in DuckDB, shaped exactly like an events dataset's marts.

Monitoring reads what the feature store and training produce; building those from the real
1M-row archive takes minutes, so these tests write ``<ds>_features.fct_features``,
``<ds>_features.fct_labels``, ``<ds>_features.fct_training_spine`` and
``<ds>_raw.load_files`` (what the training-set asset records as provenance) with the dataset's
declared feature columns, then run the *real* feature-month, training, scoring, drift and
performance assets on them.

Churn depends on a latent engagement score that the ``SIGNAL_FEATURES`` reflect, so XGBoost
learns it in seconds. Every other declared column is written too, constant: the training set
leaves constant features out (with the reason), so the champion, its drivers and its drift
report cover the signal features only. That keeps each drift report to ten plots instead of
forty; rendering them is most of a monitoring run's time. ``SHIFTED_MONTHS`` imitate the Nov–Dec
peak: spend and activity triple and recency shrinks, which must show up as drift.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from churn_assets.defs.features.project import ensure_manifest
from churn_assets.defs.features.training_sets import build_training_set
from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.modeling.protocol import Candidate, Protocol, validation_auc
from churn_assets.lib.months import shift_months
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource, build_resources
from churn_assets.settings import ChurnSettings

FIRST_MONTH = date(2010, 3, 1)
MONTHS = [shift_months(FIRST_MONTH, i) for i in range(22)]  # 2010-03-01 .. 2011-12-01
"""The observation dates the real Online Retail II history supports."""
SHIFTED_MONTHS = (date(2011, 11, 1), date(2011, 12, 1))
LAST_EVENT = datetime(2011, 12, 9, 12, 50)
CUSTOMERS = 300
SIGNAL_FEATURES = (
    "orders_30d",
    "revenue_30d",
    "orders_90d",
    "revenue_90d",
    "distinct_products_90d",
    "recency_days",
    "tenure_days",
    "lifetime_orders",
    "interpurchase_mean_days",
)
"""Windowed (alerting) features, recency, and three that grow with history (measured only)."""


def month_keys() -> list[str]:
    return [m.isoformat() for m in MONTHS]


def numeric_features(spec: DatasetSpec) -> tuple[str, ...]:
    return feature_set(spec).numeric


def _month_rows(
    spec: DatasetSpec, month: date, rng: np.random.Generator, shifted: bool
) -> pl.DataFrame:
    engagement = rng.normal(size=CUSTOMERS)
    columns: dict[str, np.ndarray] = {}
    calendar = feature_set(spec).calendar
    for i, name in enumerate(numeric_features(spec)):
        if name in calendar:  # fixed by the date itself, as in the real features
            columns[name] = np.full(CUSTOMERS, float(month.month))
            continue
        if name not in SIGNAL_FEATURES:
            columns[name] = np.zeros(CUSTOMERS)
            continue
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
            "customer_id": [str(12345 + i) for i in range(CUSTOMERS)],
            "observation_date": [month] * CUSTOMERS,
            **columns,
            "churned": (rng.uniform(size=CUSTOMERS) < churn_p).astype(np.int32),
        }
    )


def synthetic_feature_store(spec: DatasetSpec, seed: int = 7) -> pl.DataFrame:
    """Every customer is active at every observation date (volume stays constant)."""
    rng = np.random.default_rng(seed)
    return pl.concat([_month_rows(spec, m, rng, m in SHIFTED_MONTHS) for m in MONTHS])


def write_feature_store(spec: DatasetSpec, path: str, frame: pl.DataFrame) -> None:
    """Create the marts the real assets read, with labels immature once T + horizon is after
    the last event (as ``fct_labels`` decides it)."""
    horizon = spec.ev.label_horizon_days
    horizon_end = pl.col("observation_date") + timedelta(days=horizon)
    mature = horizon_end.cast(pl.Datetime("us")) <= pl.lit(LAST_EVENT)
    labels = frame.select(
        "customer_id",
        "observation_date",
        horizon_end.alias("label_horizon_end"),
        pl.lit(None, dtype=pl.Date).alias("next_purchase_date"),
        mature.alias("is_mature"),
        pl.when(mature).then(pl.col("churned")).otherwise(None).alias("churned"),
    )
    loads = pl.DataFrame(
        {
            "file": ["data/raw/online_retail_ii/online_retail_ii_events.parquet"],
            "sha256": ["0" * 64],
            "rows": [frame.height],
            "new_events": [frame.height],
            "duplicates_skipped": [0],
            "replaced_days": [""],
            "loaded_at": [LAST_EVENT],
        }
    )
    features, raw = spec.db_schema("features"), spec.db_schema("raw")
    with duckdb.connect(path) as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {features}")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {raw}")
        con.register("f", frame.drop("churned").to_arrow())
        con.register("l", labels.to_arrow())
        con.register("loads", loads.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {features}.fct_features AS SELECT * FROM f")
        con.execute(f"CREATE OR REPLACE TABLE {features}.fct_labels AS SELECT * FROM l")
        con.execute(
            f"CREATE OR REPLACE TABLE {features}.fct_training_spine AS "
            "SELECT customer_id, observation_date, churned FROM l WHERE churned IS NOT NULL"
        )
        con.execute(f"CREATE OR REPLACE TABLE {raw}.load_files AS SELECT * FROM loads")


def register_quick_champion(spec: DatasetSpec, settings: ChurnSettings) -> str:
    """The real training-set asset on the synthetic store, then the logistic baseline on the
    dataset's protocol, logged, registered and made champion with the registry helpers (no
    tuning, no plots, no selection): a champion in seconds, for tests about scoring mechanics.
    Returns the champion's version."""
    ensure_manifest(spec)  # the training-set asset records the dbt models' checksums
    resources = build_resources(settings)
    result = dg.materialize([build_training_set(spec)], resources=resources)
    ts: TrainingSet = result.output_for_node(spec.key("training_set"))
    protocol = Protocol(
        kind=spec.protocol, horizon_days=spec.ev.label_horizon_days, validation_folds=2
    )
    split = protocol.split(ts, ts.frame())
    model, fold_auc = modeling.fit_calibrated(
        modeling.baseline_pipeline(ts, seed=protocol.seed, balanced=protocol.class_weights),
        ts,
        split,
        calibration=protocol.calibration_method,
        threshold=protocol.threshold,
    )
    mlflow: MLflowResource = resources["mlflow"]
    mlflow.configure()
    logged = registry.log_model_run(
        experiment_id=mlflow.experiment_id(registry.experiment_name(spec.name)),
        run_name=f"{spec.name}-quick-baseline",
        model=model,
        ts=ts,
        input_example=split.x_train.head(5),
        params={"model": "baseline"},
        metrics={},
        figures={},
        tags={"role": "candidate", "candidate": "baseline"},
    )
    candidate = Candidate(
        name="baseline",
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        training_set_version=ts.version,
        protocol=protocol,
        metrics={},
        validation_auc=validation_auc(fold_auc),
    )
    version = registry.register(spec.name, candidate, {})
    registry.set_alias_and_tags(spec.name, version, registry.CHAMPION, {})
    return version
