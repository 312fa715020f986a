"""Realized performance: once an observation date's labels mature, compare its scores to what
happened (events datasets only; a snapshot's labels are the ones the model trained on)."""

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from churn_assets.defs.monitoring.common import (
    SCORES_TABLE,
    monitoring_asset,
    observation_dates_of_run,
    read_dates,
    record,
)
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.evaluation import top_decile
from churn_assets.resources import AlertNotifier, DuckDBResource, MLflowResource

DECAY_CHECK = "performance_decay"
EVALUATION_METRICS = ("roc_auc", "top_decile_lift")
"""Test-set figures the training stage logs on the model version's MLflow run."""


class PerformanceConfig(dg.Config):
    auc_drop_alert: float = 0.05
    """Fail the decay check when realized ROC-AUC is this far below the evaluation ROC-AUC."""


def evaluation_metrics(
    dataset: str, version: str, names: Sequence[str] = EVALUATION_METRICS
) -> dict[str, float]:
    """The version's own test figures (its run's metrics): the bar realized results must meet,
    and what the business report says about the model in plain words."""
    from mlflow import MlflowClient

    client = MlflowClient()
    run_id = client.get_model_version(registry.registered_model_name(dataset), version).run_id
    if run_id is None:
        return {}
    metrics = client.get_run(run_id).data.metrics
    return {name: metrics[name] for name in names if name in metrics}


def performance_of_date(
    spec: DatasetSpec,
    day: date,
    labels: pl.DataFrame,
    scores: pl.DataFrame,
    auc_drop_alert: float,
) -> dict[str, Any]:
    """Realized figures of one observation date against the scoring model's evaluation."""
    base: dict[str, Any] = {"observation_date": day.isoformat(), "customers": labels.height}
    if labels.is_empty() or not labels["is_mature"].all():
        return {**base, "status": "immature"}
    if scores.is_empty():
        raise dg.Failure(f"{day}: labels are mature but the date was never scored")
    joined = scores.join(labels.select("customer_id", "churned"), on="customer_id")
    y = joined["churned"].cast(pl.Int8).to_numpy()
    p = joined["churn_probability"].to_numpy()
    if joined.is_empty() or len(np.unique(y)) < 2:
        raise dg.Failure(f"{day}: mature but {joined.height} labelled rows with one class only")
    version = str(joined["model_version"][0])
    evaluation = evaluation_metrics(spec.name, version)
    realized_auc = float(roc_auc_score(y, p))
    realized_lift, capture = top_decile(y, p)
    eval_auc = evaluation.get("roc_auc")
    auc_drop = None if eval_auc is None else eval_auc - realized_auc
    decayed = auc_drop is not None and auc_drop > auc_drop_alert
    return {
        **base,
        "status": "decayed" if decayed else "mature",
        "model_name": registry.registered_model_name(spec.name),
        "model_version": version,
        "labelled_customers": joined.height,
        "realized_churn_rate": round(float(y.mean()), 4),
        "realized_roc_auc": round(realized_auc, 4),
        "realized_top_decile_lift": round(realized_lift, 3),
        "realized_top_decile_capture": round(capture, 4),
        "evaluation_roc_auc": None if eval_auc is None else round(eval_auc, 4),
        "evaluation_top_decile_lift": evaluation.get("top_decile_lift"),
        "roc_auc_drop": None if auc_drop is None else round(auc_drop, 4),
    }


def build_performance(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key("realized_performance")

    @monitoring_asset(
        spec,
        "realized_performance",
        [SCORES_TABLE, "features_monthly"],
        {"duckdb", "mlflow", "python"},
        "Realized ROC-AUC and top-decile lift of an observation date's scores once its labels "
        "matured, against the scoring model's own evaluation figures.",
        [
            dg.AssetCheckSpec(
                DECAY_CHECK,
                asset=name,
                blocking=False,
                description="Fails (WARN) when realized ROC-AUC falls more than auc_drop_alert "
                "below the model's evaluation ROC-AUC; triggers retraining like a drift alert.",
            )
        ],
    )
    def realized_performance(
        context: dg.AssetExecutionContext,
        config: PerformanceConfig,
        duckdb: DuckDBResource,
        mlflow: MLflowResource,
        notifier: AlertNotifier,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Labels are known once T + horizon has passed in the *data* (newest event), which the
        monthly feature table records per row (``is_mature``): replayed months report
        ``immature`` until enough later months have arrived. The check judges the newest
        matured date of the run and lists older decayed ones."""
        days = observation_dates_of_run(spec, context)
        labels_by_day = read_dates(duckdb, spec.scoring_table, days)
        scores_by_day = read_dates(duckdb, f"{spec.db_schema('monitoring')}.{SCORES_TABLE}", days)
        results = []
        for day in days:
            results.append(
                performance_of_date(
                    spec, day, labels_by_day[day], scores_by_day[day], config.auc_drop_alert
                )
            )
            if results[-1]["status"] == "decayed":
                notifier.notify(f"{spec.name}_performance_decay", results[-1])
            context.log.info(f"{day}: labels {results[-1]['status']}")
            record(spec, context, day, results[-1])
        matured = [r for r in results if r["status"] != "immature"]
        judged = matured[-1] if matured else results[-1]
        older_decayed = [r["observation_date"] for r in matured[:-1] if r["status"] == "decayed"]
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name=DECAY_CHECK,
            passed=judged["status"] != "decayed",
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**judged, "older_dates_decayed": ", ".join(older_decayed) or "none"},
        )

    return realized_performance
