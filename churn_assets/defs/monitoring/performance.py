"""Realized performance: once a month's labels mature, compare scores to what happened."""

from collections.abc import Iterator
from datetime import date, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from churn_assets.defs.monitoring.scoring import (
    DATASET,
    FEATURES_ASSET,
    FEATURES_TABLE,
    MONITORING_SCHEMA,
    SCORES_TABLE,
    read_month,
    retail_scores,
)
from churn_assets.lib import registry_models as registry
from churn_assets.lib.evaluation import top_decile
from churn_assets.partitions import observation_months
from churn_assets.resources import AlertNotifier, DuckDBResource, MLflowResource
from churn_assets.settings import OWNER_ML, get_settings

DECAY_CHECK = "performance_decay"
LABEL = "churned"
EVENTS_TABLE = "raw.retail_transactions"
EVALUATION_METRICS = ("roc_auc", "top_decile_lift")
"""Test-set figures the training stage logs on the model version's MLflow run."""


class PerformanceConfig(dg.Config):
    auc_drop_alert: float = 0.05
    """Fail the decay check when realized ROC-AUC is this far below the evaluation ROC-AUC."""


def data_as_of(duckdb: DuckDBResource) -> datetime | None:
    """The newest event in the raw table: labels can only be known up to this moment."""
    with duckdb.connect(read_only=True) as con:
        row = con.execute(f"SELECT max(invoice_ts) FROM {EVENTS_TABLE}").fetchone()
    return row[0] if row else None


def evaluation_metrics(version: str) -> dict[str, float]:
    """The version's own test figures (its run's metrics): the bar realized results must meet."""
    from mlflow import MlflowClient

    client = MlflowClient()
    run_id = client.get_model_version(registry.registered_model_name(DATASET), version).run_id
    if run_id is None:
        return {}
    metrics = client.get_run(run_id).data.metrics
    return {name: metrics[name] for name in EVALUATION_METRICS if name in metrics}


def is_mature(month: date, as_of: datetime | None, horizon_days: int) -> bool:
    return (
        as_of is not None
        and datetime.combine(month + timedelta(days=horizon_days), datetime.min.time()) <= as_of
    )


@dg.asset(
    partitions_def=observation_months,
    deps=[retail_scores, FEATURES_ASSET],
    group_name="monitoring",
    kinds={"duckdb", "mlflow", "python"},
    owners=[OWNER_ML],
    pool="duckdb",
    tags={"layer": "monitoring"},
    check_specs=[
        dg.AssetCheckSpec(
            DECAY_CHECK,
            asset="retail_realized_performance",
            blocking=False,
            description="Fails (WARN) when realized ROC-AUC falls more than auc_drop_alert below "
            "the model's evaluation ROC-AUC; triggers retraining like a drift alert.",
        )
    ],
)
def retail_realized_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    duckdb: DuckDBResource,
    mlflow: MLflowResource,
    notifier: AlertNotifier,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Realized ROC-AUC and top-decile lift of the month's scores vs the model's evaluation.

    Labels for T are only known once T + horizon (90 days) has passed in the *data* (newest
    event), not in wall-clock time, so replayed months report ``immature`` until enough later
    months have arrived; the landing sensor re-runs the month that matures with each new file.
    """
    settings = get_settings()
    month = date.fromisoformat(context.partition_key)
    as_of = data_as_of(duckdb)
    base = {"observation_date": month.isoformat(), "data_as_of": str(as_of)}
    if not is_mature(month, as_of, settings.label_horizon_days):
        context.log.info(f"{month}: labels immature (data as of {as_of})")
        yield dg.MaterializeResult(metadata={**base, "status": "immature"})
        yield dg.AssetCheckResult(
            check_name=DECAY_CHECK, passed=True, metadata={**base, "status": "immature"}
        )
        return

    scores = read_month(duckdb, f"{MONITORING_SCHEMA}.{SCORES_TABLE}", month)
    if scores.is_empty():
        raise dg.Failure(f"{month}: labels are mature but the month was never scored")
    labels = read_month(duckdb, FEATURES_TABLE, month).select("customer_id", LABEL)
    joined = scores.join(labels, on="customer_id").filter(pl.col(LABEL).is_not_null())
    y = joined[LABEL].cast(pl.Int8).to_numpy()
    p = joined["churn_probability"].to_numpy()
    if joined.is_empty() or len(np.unique(y)) < 2:
        raise dg.Failure(f"{month}: mature but {joined.height} labelled rows with one class only")

    mlflow.setup()
    version = str(joined["model_version"][0])
    evaluation = evaluation_metrics(version)
    realized_auc = float(roc_auc_score(y, p))
    realized_lift, capture = top_decile(y, p)
    eval_auc = evaluation.get("roc_auc")
    eval_lift = evaluation.get("top_decile_lift")
    auc_drop = None if eval_auc is None else eval_auc - realized_auc
    decayed = auc_drop is not None and auc_drop > config.auc_drop_alert
    metadata = {
        **base,
        "status": "decayed" if decayed else "mature",
        "model_name": registry.registered_model_name(DATASET),
        "model_version": version,
        "labelled_customers": joined.height,
        "realized_churn_rate": float(y.mean()),
        "realized_roc_auc": realized_auc,
        "realized_top_decile_lift": realized_lift,
        "realized_top_decile_capture": capture,
        "evaluation_roc_auc": eval_auc,
        "evaluation_top_decile_lift": eval_lift,
        "roc_auc_drop": auc_drop,
    }
    if decayed:
        notifier.notify("retail_performance_decay", metadata)
    yield dg.MaterializeResult(metadata=metadata)
    yield dg.AssetCheckResult(
        check_name=DECAY_CHECK,
        passed=not decayed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )
