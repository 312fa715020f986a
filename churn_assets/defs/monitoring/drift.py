"""Monthly drift report: the month's features and scores vs the scoring model's training set."""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from churn_assets.defs.monitoring.scoring import (
    DATASET,
    FEATURES_ASSET,
    FEATURES_TABLE,
    MONITORING_SCHEMA,
    MONTHLY_FRESHNESS,
    SCORES_TABLE,
    read_month,
    reference_frame,
    retail_scores,
)
from churn_assets.lib import features_registry
from churn_assets.lib import registry_models as registry
from churn_assets.lib.drift import (
    DEFAULT_PSI_ALERT,
    DEFAULT_PSI_WARN,
    DEFAULT_VOLUME_ALERT,
    DEFAULT_VOLUME_WARN,
    DriftSummary,
    summarize,
)
from churn_assets.lib.drift_report import write_report
from churn_assets.lib.modeling import feature_frame
from churn_assets.partitions import observation_months
from churn_assets.resources import AlertNotifier, DuckDBResource, MLflowResource
from churn_assets.settings import OWNER_ML, get_settings

DRIFT_CHECK = "drift_alert"
MONITORING_EXPERIMENT = "churn-retail-monitoring"


class DriftConfig(dg.Config):
    """Alert thresholds, editable per run in the launchpad."""

    psi_warn: float = DEFAULT_PSI_WARN
    psi_alert: float = DEFAULT_PSI_ALERT
    share_drifted_alert: float = 0.3
    """Alert when at least this share of features is past ``psi_alert`` (or the score is)."""
    volume_warn: float = DEFAULT_VOLUME_WARN
    volume_alert: float = DEFAULT_VOLUME_ALERT
    """Alert when the number of customers scored differs this much (relative) from the
    reference's mean per observation date."""


def _columns(
    frame: pl.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> dict[str, Any]:
    columns: dict[str, Any] = {c: frame[c].cast(pl.Float64).to_numpy() for c in numeric}
    columns |= {c: frame[c].cast(pl.String).to_list() for c in categorical}
    return columns


def compute_drift(
    month: date,
    current: pl.DataFrame,
    current_scores: np.ndarray,
    model: registry.Champion,
    config: DriftConfig,
) -> DriftSummary:
    """Reference = the training set recorded on the model's run, scored by the same model."""
    numeric, categorical = tuple(model.numeric_features), tuple(model.categorical_features)
    reference = reference_frame(model)
    reference_scores = model.model.predict_proba(feature_frame(reference, numeric, categorical))[
        :, 1
    ]
    calendar = features_registry.calendar_features("fct_retail_features")
    numeric = tuple(c for c in numeric if c not in calendar)
    categorical = tuple(c for c in categorical if c not in calendar)
    return summarize(
        partition=month.isoformat(),
        model_name=registry.registered_model_name(DATASET),
        model_version=model.version,
        training_set=model.training_set_version,
        reference=_columns(reference, numeric, categorical),
        current=_columns(current, numeric, categorical),
        numeric_features=numeric,
        categorical_features=categorical,
        reference_scores=reference_scores,
        current_scores=current_scores,
        psi_warn=config.psi_warn,
        psi_alert=config.psi_alert,
        share_alert=config.share_drifted_alert,
        measured_only=features_registry.history_features("fct_retail_features"),
        reference_rows_per_month=float(
            np.mean(reference.group_by("observation_date").len()["len"].to_numpy())
        ),
        volume_warn=config.volume_warn,
        volume_alert=config.volume_alert,
    )


def drift_table(summary: DriftSummary) -> dg.TableMetadataValue:
    """One row per (feature, test): PSI for every feature, KS for the numeric ones and the score."""
    rows = []
    for f in [*([summary.score] if summary.score else []), *summary.features]:
        rows.append(
            dg.TableRecord(
                {
                    "feature": f.feature,
                    "test": "psi",
                    "statistic": round(f.psi, 5),
                    "p_value": None,
                    "status": f.status,
                    "alerting": f.alerting,
                    "drifted": f.drifted,
                }
            )
        )
        if f.ks_statistic is not None:
            rows.append(
                dg.TableRecord(
                    {
                        "feature": f.feature,
                        "test": "ks",
                        "statistic": round(f.ks_statistic, 5),
                        "p_value": f.ks_pvalue,
                        "status": "info",
                        "alerting": False,
                        "drifted": False,
                    }
                )
            )
    rows.append(
        dg.TableRecord(
            {
                "feature": "active_customers",
                "test": "volume_change",
                "statistic": round(summary.volume_change, 5),
                "p_value": None,
                "status": summary.volume_status,
                "alerting": True,
                "drifted": summary.volume_status == "alert",
            }
        )
    )
    schema = dg.TableSchema(
        columns=[
            dg.TableColumn("feature", "string"),
            dg.TableColumn("test", "string"),
            dg.TableColumn("statistic", "float"),
            dg.TableColumn("p_value", "float"),
            dg.TableColumn("status", "string"),
            dg.TableColumn("alerting", "bool"),
            dg.TableColumn("drifted", "bool"),
        ]
    )
    return dg.MetadataValue.table(records=rows, schema=schema)


def log_to_mlflow(mlflow: MLflowResource, summary: DriftSummary, html_path: str) -> str:
    """One MLflow run per (month, model version) holding the JSON report and the HTML page."""
    import mlflow as mlflow_api

    experiment_id = mlflow.experiment_id(MONITORING_EXPERIMENT)
    with mlflow_api.start_run(
        experiment_id=experiment_id, run_name=f"drift-{summary.partition}"
    ) as run:
        mlflow_api.set_tags(
            {
                "observation_date": summary.partition,
                "model_name": summary.model_name,
                "model_version": summary.model_version,
                "training_set": summary.training_set,
                "drift_status": summary.status,
            }
        )
        mlflow_api.log_metrics(
            {
                "share_drifted": summary.share_drifted,
                "score_psi": summary.score.psi if summary.score else 0.0,
                "volume_change": summary.volume_change,
                **{f"psi_{f.feature}": f.psi for f in summary.features},
            }
        )
        mlflow_api.log_dict(summary.to_dict(), "drift_report.json")
        mlflow_api.log_artifact(html_path)
        return run.info.run_id


@dg.asset(
    partitions_def=observation_months,
    deps=[retail_scores, FEATURES_ASSET],
    group_name="monitoring",
    kinds={"duckdb", "mlflow", "html"},
    owners=[OWNER_ML],
    pool="duckdb",
    tags={"layer": "monitoring"},
    freshness_policy=MONTHLY_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset="retail_drift_report",
            blocking=False,
            description="Fails (WARN) when the score PSI or the share of drifted features crosses "
            "the alert threshold; the retraining sensor reacts to each failure once.",
        )
    ],
)
def retail_drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    duckdb: DuckDBResource,
    mlflow: MLflowResource,
    notifier: AlertNotifier,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """PSI (reference deciles) and KS per feature, categorical PSI, score PSI, share drifted.

    The reference is the training set of the model version that scored the month (recovered
    from its MLflow run tags), not a fixed baseline: drift is only meaningful relative to what
    the scoring model learnt from. Writes a self-contained HTML page under the reports folder
    and logs the JSON report to MLflow (experiment ``churn-retail-monitoring``).
    """
    month = date.fromisoformat(context.partition_key)
    mlflow.setup()
    scores = read_month(duckdb, f"{MONITORING_SCHEMA}.{SCORES_TABLE}", month)
    if scores.is_empty():
        raise dg.Failure(f"no scores for {month}: materialize retail_scores for this month first")
    features = read_month(duckdb, FEATURES_TABLE, month)
    current = features.join(scores.select("customer_id", "churn_probability"), on="customer_id")
    versions = scores["model_version"].unique().to_list()
    if len(versions) != 1:
        raise dg.Failure(
            f"{month}: scores from several model versions {versions}; re-score the month"
        )
    model = registry.load_model_version(DATASET, str(versions[0]))
    summary = compute_drift(month, current, current["churn_probability"].to_numpy(), model, config)

    html_path = write_report(
        summary,
        get_settings().reports_dir / "retail_drift" / f"retail_drift_{month.isoformat()}.html",
    )
    run_id = log_to_mlflow(mlflow, summary, str(html_path))
    alert = summary.status == "alert"
    check_metadata: dict[str, Any] = {
        "observation_date": month.isoformat(),
        "model_name": summary.model_name,
        "model_version": model.version,
        "status": summary.status,
        "share_drifted": summary.share_drifted,
        "score_psi": summary.score.psi if summary.score else 0.0,
        "drifted_features": ", ".join(summary.drifted_features) or "none",
        "active_customers": summary.current_rows,
        "volume_change": summary.volume_change,
    }
    if alert:
        notifier.notify("retail_drift_alert", {**check_metadata, "report": str(html_path)})
    context.log.info(f"{month}: drift {summary.status}, share drifted {summary.share_drifted:.0%}")
    yield dg.MaterializeResult(
        metadata={
            **check_metadata,
            "drift_table": drift_table(summary),
            "report_path": dg.MetadataValue.path(str(html_path)),
            "mlflow_run_id": run_id,
            "reference_rows": summary.features[0].reference_n if summary.features else 0,
            "current_rows": current.height,
        }
    )
    yield dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        passed=not alert,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=check_metadata,
        description=f"drift {summary.status} vs training set {summary.training_set}",
    )
