"""Jobs the monitoring automation launches, and the monthly scoring schedule.

Ingestion (unpartitioned: raw table and the dbt feature models) and the month's partitioned
assets (features at T, scores, drift, performance) cannot share one run, so they are two jobs:
the landing sensor launches the first, and a run-status sensor launches the second for the
new month once ingestion succeeded (see ``sensors.py``)."""

from __future__ import annotations

import dagster as dg

from churn_assets.partitions import observation_months

RAW_RETAIL = "raw_retail_transactions"

# Each step of these small jobs does seconds of work; a subprocess per step would spend ~20 s
# re-loading the code location first (measured during a replay). One process per run instead.
IN_PROCESS = dg.in_process_executor

retail_ingest_job = dg.define_asset_job(
    "retail_ingest_job",
    executor_def=IN_PROCESS,
    # Raw retail events, every unpartitioned dbt model downstream of them, and those models'
    # other inputs (e.g. int_observation_dates), so a fresh database builds too.
    selection=dg.AssetSelection.from_string(
        f'key:"{RAW_RETAIL}" or (+(key:"{RAW_RETAIL}"+) and group:"features" '
        'and not key:"retail_features_monthly" and not key:"retail_training_set")'
    ),
    description="Reload raw retail events (archive up to the replay as-of + accepted landing "
    "files) and refresh the unpartitioned dbt feature models built on them.",
    tags={"churn/stage": "ingest"},
)

retail_monthly_monitoring_job = dg.define_asset_job(
    "retail_monthly_monitoring_job",
    executor_def=IN_PROCESS,
    selection=dg.AssetSelection.from_string('key:"retail_features_monthly" or group:"monitoring"'),
    partitions_def=observation_months,
    description="One observation month: features at T, champion scores, drift report, "
    "realized performance.",
    tags={"churn/stage": "monitoring"},
)

retail_label_maturity_job = dg.define_asset_job(
    "retail_label_maturity_job",
    executor_def=IN_PROCESS,
    selection=dg.AssetSelection.from_string(
        'key:"retail_features_monthly" or key:"retail_realized_performance"'
    ),
    partitions_def=observation_months,
    description="Re-derive the labels of a month whose horizon has just passed and measure "
    "the realized ROC-AUC / lift of its scores.",
    tags={"churn/stage": "performance"},
)

retail_retraining_job = dg.define_asset_job(
    "retail_retraining_job",
    executor_def=IN_PROCESS,
    selection=dg.AssetSelection.from_string(
        'key:"retail_training_set" or (group:"training" and key:"retail_*")'
    ),
    description="Training set snapshot → train → evaluate → promotion gate for churn-retail, "
    "launched by the retraining sensor on drift or decay alerts.",
    tags={"churn/stage": "retraining"},
)

retail_monthly_scoring_schedule = dg.build_schedule_from_partitioned_job(
    retail_monthly_monitoring_job,
    name="retail_monthly_scoring_schedule",
    description="Score, drift-check and evaluate the newest month on the 2nd of each month "
    "(stopped by default: replay drives months through the landing sensor instead).",
    hour_of_day=6,
    minute_of_hour=0,
    day_of_month=2,
)
