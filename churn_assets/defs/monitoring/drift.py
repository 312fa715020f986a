"""Drift report: the features and scores at an observation date vs the scoring model's own
training set (the only reference drift means something against)."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from churn_assets import metadata
from churn_assets.defs.monitoring.common import (
    SCORES_TABLE,
    features_input,
    monitoring_asset,
    observation_dates_of_run,
    read_dates,
    record,
    reference,
)
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.drift import (
    DEFAULT_PSI_ALERT,
    DEFAULT_PSI_WARN,
    DEFAULT_VOLUME_ALERT,
    DEFAULT_VOLUME_WARN,
    DriftSummary,
    summarize,
)
from churn_assets.lib.drift_report import plots, ranked, write_report
from churn_assets.lib.features_registry import feature_set
from churn_assets.resources import AlertNotifier, DuckDBResource, MLflowResource
from churn_assets.settings import ChurnSettings

DRIFT_CHECK = "drift_alert"


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
    spec: DatasetSpec,
    partition: str,
    current: pl.DataFrame,
    model: registry.Champion,
    config: DriftConfig,
) -> DriftSummary:
    """Reference = the training set recorded on the model's run, scored by the same model;
    calendar features are left out, features that grow with history are measured only."""
    features = feature_set(spec)
    numeric = tuple(c for c in model.numeric_features if c not in features.calendar)
    categorical = tuple(c for c in model.categorical_features if c not in features.calendar)
    fitted_on = reference(model)
    reference_frame, reference_scores = fitted_on.frame, fitted_on.scores
    return summarize(
        partition=partition,
        model_name=registry.registered_model_name(spec.name),
        model_version=model.version,
        training_set=model.training_set_version,
        reference=_columns(reference_frame, numeric, categorical),
        current=_columns(current, numeric, categorical),
        numeric_features=numeric,
        categorical_features=categorical,
        reference_scores=reference_scores,
        current_scores=current["churn_probability"].to_numpy(),
        psi_warn=config.psi_warn,
        psi_alert=config.psi_alert,
        share_alert=config.share_drifted_alert,
        measured_only=features.grows_with_history,
        known_only=features.left_censored,
        reference_rows_per_month=float(
            np.mean(reference_frame.group_by("observation_date").len()["len"].to_numpy())
        ),
        volume_warn=config.volume_warn,
        volume_alert=config.volume_alert,
    )


def drift_frame(summary: DriftSummary) -> pl.DataFrame:
    """One row per feature (the score first): PSI, KS, status, whether it may alert."""
    rows = [
        {
            "feature": f.feature,
            "psi": f.psi,
            "ks_statistic": f.ks_statistic,
            "ks_p_value": f.ks_pvalue,
            "status": f.status,
            "alerting": f.alerting,
            "drifted": f.drifted,
        }
        for f in ranked(summary)
    ]
    rows.append(
        {
            "feature": "customers (volume change)",
            "psi": summary.volume_change,
            "ks_statistic": None,
            "ks_p_value": None,
            "status": summary.volume_status,
            "alerting": True,
            "drifted": summary.volume_status == "alert",
        }
    )
    return pl.DataFrame(rows, infer_schema_length=None)


def log_to_mlflow(
    mlflow: MLflowResource, spec: DatasetSpec, summary: DriftSummary, html: Path
) -> str:
    """One MLflow run per (date, model version) holding the JSON report and the HTML page."""
    import mlflow as mlflow_api

    experiment_id = mlflow.experiment_id(f"{registry.experiment_name(spec.name)}-monitoring")
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
        mlflow_api.log_artifact(str(html))
        return run.info.run_id


def drift_of_date(
    spec: DatasetSpec,
    day: date,
    scores: pl.DataFrame,
    features: pl.DataFrame,
    config: DriftConfig,
    settings: ChurnSettings,
    mlflow: MLflowResource,
    notifier: AlertNotifier,
) -> dict[str, Any]:
    """One observation date: summary, HTML report, MLflow run, alert; returns the check's
    figures plus the date's materialization metadata (under ``materialization``)."""
    if scores.is_empty():
        raise dg.Failure(f"no scores at {day}: materialize {spec.key(SCORES_TABLE)} first")
    current = features.join(scores.select("customer_id", "churn_probability"), on="customer_id")
    versions = scores["model_version"].unique().to_list()
    if len(versions) != 1:
        raise dg.Failure(f"{day}: scores from several model versions {versions}; re-score")
    model = registry.load_model_version(spec.name, str(versions[0]))
    summary = compute_drift(spec, day.isoformat(), current, model, config)
    figures = plots(summary)
    path = write_report(
        summary,
        spec.name,
        Path(settings.reports_dir) / spec.name / "drift" / f"drift_{day.isoformat()}.html",
        figures,
    )
    run_id = log_to_mlflow(mlflow, spec, summary, path)
    outcome: dict[str, Any] = {
        "observation_date": day.isoformat(),
        "model_name": summary.model_name,
        "model_version": model.version,
        "training_set": summary.training_set,
        "status": summary.status,
        "share_drifted": round(summary.share_drifted, 4),
        "score_psi": round(summary.score.psi, 4) if summary.score else 0.0,
        "drifted_features": ", ".join(summary.drifted_features) or "none",
        "customers_scored": summary.current_rows,
        "volume_change": round(summary.volume_change, 4),
    }
    if summary.status == "alert":
        notifier.notify(f"{spec.name}_drift_alert", {**outcome, "report": str(path)})
    return {
        **outcome,
        "materialization": {
            **outcome,
            "drift_table": metadata.table(drift_frame(summary)),
            "plots": metadata.plots({f"{name}.png": png for name, png in figures.items()}),
            **metadata.report_links(settings, "report", path),
            "mlflow_run_id": run_id,
        },
    }


def build_drift(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key("drift_report")

    @monitoring_asset(
        spec,
        "drift_report",
        [SCORES_TABLE, features_input(spec)],
        {"duckdb", "mlflow", "html"},
        "PSI (reference deciles) and KS per feature, categorical PSI, score PSI, share of drifted "
        "features and the change in customers scored, against the scoring model's training set; "
        "an HTML report, plots in the UI and a JSON report in MLflow.",
        [
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=name,
                blocking=False,
                description="Fails (WARN) when the score PSI, the share of drifted features or the "
                "population change crosses the alert threshold; the retraining sensor reacts to "
                "each failure once.",
            )
        ],
    )
    def drift_report(
        context: dg.AssetExecutionContext,
        config: DriftConfig,
        settings: ChurnSettings,
        duckdb: DuckDBResource,
        mlflow: MLflowResource,
        notifier: AlertNotifier,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        """Each observation date of the run gets its report; the check judges the newest (the
        state the retraining sensor acts on) and lists older alerting dates."""
        days = observation_dates_of_run(spec, context)
        scores_by_day = read_dates(duckdb, f"{spec.db_schema('monitoring')}.{SCORES_TABLE}", days)
        features_by_day = read_dates(duckdb, spec.scoring_table, days)
        outcomes: list[dict[str, Any]] = []
        for day in days:
            outcomes.append(
                drift_of_date(
                    spec,
                    day,
                    scores_by_day[day],
                    features_by_day[day],
                    config,
                    settings,
                    mlflow,
                    notifier,
                )
            )
            context.log.info(
                f"{day}: drift {outcomes[-1]['status']}, "
                f"share drifted {outcomes[-1]['share_drifted']:.0%}"
            )
            record(spec, context, day, outcomes[-1].pop("materialization"))
        newest = outcomes[-1]
        older_alerts = [o["observation_date"] for o in outcomes[:-1] if o["status"] == "alert"]
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name=DRIFT_CHECK,
            passed=newest["status"] != "alert",
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**newest, "older_dates_alerting": ", ".join(older_alerts) or "none"},
            description=f"drift {newest['status']} at {newest['observation_date']} vs training "
            f"set {newest['training_set']}",
        )

    return drift_report
