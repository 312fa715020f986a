"""Jobs the automation of a dataset launches, and its scoring schedule.

Ingestion (unpartitioned: raw table, quality report, the dbt models) and an observation date's
partitioned assets (features at T, scores, drift, performance) cannot share one run, so they
are separate jobs: the landing sensor launches the first, and a run-status sensor launches the
second for the new month once ingestion succeeded.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.partitions import observation_dates, partitions_name

# Each step of these jobs does seconds of work; a subprocess per step would spend ~20 s
# re-loading the code location first (measured during a replay). One process per run instead.
IN_PROCESS = dg.in_process_executor


@dataclass(frozen=True)
class DatasetJobs:
    ingest: "AssetJob"
    retraining: "AssetJob"
    scoring: "AssetJob"
    label_maturity: "AssetJob | None"

    def all(self) -> "list[AssetJob]":
        jobs = [self.ingest, self.retraining, self.scoring]
        return jobs + ([self.label_maturity] if self.label_maturity else [])


def build_jobs(spec: DatasetSpec, dbt_models: dg.AssetsDefinition) -> DatasetJobs:
    keys = {
        name: dg.AssetKey(spec.key(name))
        for name in (
            f"raw_{spec.raw_table}",
            "quality_report",
            "training_set",
            "features_monthly",
            "scores",
            "drift_report",
            "realized_performance",
        )
    }
    training = dg.AssetSelection.groups("training") & dg.AssetSelection.tag("dataset", spec.name)
    events = spec.kind == "events"
    ingest = dg.define_asset_job(
        spec.key("ingest_job"),
        executor_def=IN_PROCESS,
        selection=dg.AssetSelection.assets(keys[f"raw_{spec.raw_table}"], keys["quality_report"])
        | dg.AssetSelection.assets(dbt_models),
        description=f"Reload {spec.name}'s raw table (declared files + accepted deliveries) and "
        "refresh its dbt feature models.",
        tags={"churn/stage": "ingest", "dataset": spec.name},
    )
    retraining = dg.define_asset_job(
        spec.key("retraining_job"),
        executor_def=IN_PROCESS,
        selection=dg.AssetSelection.assets(keys["training_set"]) | training,
        description=f"Training set snapshot → candidates → selection → promotion gate for "
        f"{spec.name}, launched by the retraining sensor on drift or decay alerts.",
        tags={"churn/stage": "retraining", "dataset": spec.name},
    )
    monitored = [keys["scores"], keys["drift_report"]]
    scoring = dg.define_asset_job(
        spec.key("monitoring_job"),
        executor_def=IN_PROCESS,
        selection=dg.AssetSelection.assets(
            *(
                [keys["features_monthly"], *monitored, keys["realized_performance"]]
                if events
                else monitored
            )
        ),
        partitions_def=observation_dates(spec) if events else None,
        description="One observation date: features at T, champion scores, drift report"
        + (", realized performance." if events else "."),
        tags={"churn/stage": "monitoring", "dataset": spec.name},
    )
    maturity = (
        dg.define_asset_job(
            spec.key("label_maturity_job"),
            executor_def=IN_PROCESS,
            selection=dg.AssetSelection.assets(
                keys["features_monthly"], keys["realized_performance"]
            ),
            partitions_def=observation_dates(spec),
            description="Re-derive the labels of a date whose horizon has just passed and measure "
            "the realized ROC-AUC / lift of its scores.",
            tags={"churn/stage": "performance", "dataset": spec.name},
        )
        if events
        else None
    )
    return DatasetJobs(ingest, retraining, scoring, maturity)


def build_schedule(spec: DatasetSpec, jobs: DatasetJobs) -> dg.ScheduleDefinition:
    """Score, drift-check and evaluate the newest observation date on the 2nd of each month
    (stopped by default: a replay drives months through the landing sensor instead)."""

    @dg.schedule(
        name=spec.key("monthly_scoring_schedule"),
        job=jobs.scoring,
        cron_schedule="0 6 2 * *",
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="Scores, drift and realized performance of the newest observation date, on "
        "the 2nd of each month.",
    )
    def monthly_scoring(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        if spec.kind != "events":
            return dg.RunRequest(run_key=f"{spec.name}:{context.scheduled_execution_time:%Y-%m}")
        keys = context.instance.get_dynamic_partitions(partitions_name(spec))
        if not keys:
            return dg.SkipReason(f"{spec.name} has no observation date yet: ingest data first")
        newest = max(keys)
        return dg.RunRequest(run_key=f"{spec.name}:{newest}", partition_key=newest)

    return monthly_scoring
