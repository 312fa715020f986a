"""A dataset's monitoring automation.

* ``<dataset>_month_after_ingest_sensor`` (events; run-status): after an ingest run for a
  delivery succeeded, launches the monitoring job for the observation date the delivery made
  observable, and the label-maturity job for every date whose labels it matured.
* ``<dataset>_retraining_sensor``: failed ``drift_alert`` / ``performance_decay`` evaluations
  launch the retraining job once per alert, with a cooldown per model version, and skip (with
  the reason) while the matured history is too short for the out-of-time split.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import dagster as dg
from duckdb import CatalogException, IOException

from churn_assets.defs.monitoring.alerts import notify_on_error
from churn_assets.defs.monitoring.drift import DRIFT_CHECK
from churn_assets.defs.monitoring.jobs import DatasetJobs
from churn_assets.defs.monitoring.performance import DECAY_CHECK
from churn_assets.defs.sources.landing import TAG_DATA_AS_OF, TAG_DELIVERY, TAG_MONTH
from churn_assets.lib import modeling
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.months import months_between
from churn_assets.partitions import partitions_name
from churn_assets.resources import AlertNotifier, DuckDBResource
from churn_assets.settings import ChurnSettings

TAG_TRIGGER = "churn/retraining_trigger"
RETRAIN_COOLDOWN_MONTHS = 2
"""After retraining on an alert for month T, alerts on the same model before T + 2 months are
only logged: the retrained model needs a month of its own before it can be judged."""
# One delivery advances the data by about a month, but a label horizon does not line up with
# calendar months: a delivery can mature zero, one or two observation dates. Looking back 45 days
# catches every date that matured since the previous delivery; re-measuring one is harmless.
MATURITY_LOOKBACK_DAYS = 45


def newly_mature(keys: Sequence[str], data_as_of: date, horizon_days: int) -> list[str]:
    """Observation dates T whose labels became known recently: T + horizon in
    (as_of - lookback, as_of]."""
    return [
        k
        for k in keys
        if data_as_of - timedelta(days=MATURITY_LOOKBACK_DAYS)
        < date.fromisoformat(k) + timedelta(days=horizon_days)
        <= data_as_of
    ]


def build_after_ingest_sensor(spec: DatasetSpec, jobs: DatasetJobs) -> dg.SensorDefinition:
    maturity = jobs.label_maturity
    assert maturity is not None, "only events datasets have a label-maturity job"

    @dg.run_status_sensor(
        name=spec.key("month_after_ingest_sensor"),
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[jobs.ingest],
        request_jobs=[jobs.scoring, maturity],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After an ingest run for a delivery succeeds: score and drift-check the "
        "observation date it made observable, and measure realized performance of the dates "
        "whose labels it matured.",
    )
    def month_after_ingest(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
        run = context.dagster_run
        month = run.tags.get(TAG_MONTH)
        if not month:
            return []
        keys = context.instance.get_dynamic_partitions(partitions_name(spec))
        requests = []
        if month in keys:
            requests.append(
                dg.RunRequest(
                    run_key=f"{run.run_id}:month:{month}",
                    job_name=jobs.scoring.name,
                    partition_key=month,
                    tags={TAG_DELIVERY: run.tags.get(TAG_DELIVERY, "")},
                )
            )
        as_of = run.tags.get(TAG_DATA_AS_OF)
        matured = (
            newly_mature(keys, date.fromisoformat(as_of[:10]), spec.ev.label_horizon_days)
            if as_of
            else []
        )
        requests += [
            dg.RunRequest(
                run_key=f"{run.run_id}:mature:{mature}",
                job_name=maturity.name,
                partition_key=mature,
            )
            for mature in matured
            if mature != month
        ]
        return requests

    return month_after_ingest


@dataclass(frozen=True)
class Alert:
    record_id: int
    check: str
    partition: str
    model_version: str


def failed_check_alerts(
    instance: dg.DagsterInstance, spec: DatasetSpec, after_id: int
) -> list[Alert]:
    """Failed alert-check evaluations of the dataset newer than ``after_id``, oldest first.

    Reads the 100 newest evaluations per check and filters on ``passed``: the sensor ticks every
    30 s with a cursor, so no new failure can fall outside that window.
    """
    keys = [dg.AssetCheckKey(dg.AssetKey(spec.key("drift_report")), DRIFT_CHECK)]
    if spec.kind == "events":
        keys.append(dg.AssetCheckKey(dg.AssetKey(spec.key("realized_performance")), DECAY_CHECK))
    alerts = []
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=100):
            evaluation = record.event.asset_check_evaluation if record.event else None
            if record.id <= after_id or evaluation is None or evaluation.passed:
                continue
            metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
            alerts.append(
                Alert(
                    record_id=record.id,
                    check=key.name,
                    partition=str(record.partition or metadata.get("observation_date", "")),
                    model_version=str(metadata.get("model_version", "")),
                )
            )
    return sorted(alerts, key=lambda a: a.record_id)


def retraining_blocker(spec: DatasetSpec, duckdb: DuckDBResource) -> str | None:
    """Why a retraining run would fail on the current matured history (see the split rules)."""
    if spec.kind != "events":
        return None
    spine = f"{spec.db_schema('features')}.fct_training_spine"
    try:
        with duckdb.connect(read_only=True) as con:
            rows = con.execute(
                f"SELECT DISTINCT observation_date FROM {spine} ORDER BY 1"
            ).fetchall()
    except CatalogException:
        return f"{spine} does not exist yet"
    except (OSError, IOException) as error:  # duckdb's IOException is not an OSError
        return f"{duckdb.path} cannot be read yet ({error})"
    return modeling.out_of_time_blocker([r[0] for r in rows], spec.ev.label_horizon_days)


def build_retraining_sensor(spec: DatasetSpec, jobs: DatasetJobs) -> dg.SensorDefinition:
    name = spec.key("retraining_sensor")

    @dg.sensor(
        name=name,
        job=jobs.retraining,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retrain {spec.name} (training set → candidates → selection → promotion "
        "gate) once per failed drift_alert / performance_decay check, with a cooldown per model "
        "version.",
    )
    def retraining_sensor(
        context: dg.SensorEvaluationContext,
        settings: ChurnSettings,
        duckdb: DuckDBResource,
        notifier: AlertNotifier,
    ) -> dg.SensorResult:
        with notify_on_error(notifier, settings, name):
            if context.cursor is None:
                # First evaluation: alerts already in history (e.g. `make run`'s backfill of every
                # month) are the baseline, not news; retraining on all of them helps nobody.
                baseline = max(
                    (a.record_id for a in failed_check_alerts(context.instance, spec, 0)), default=0
                )
                return dg.SensorResult(cursor=json.dumps({"after_id": baseline, "last": {}}))
            cursor = json.loads(context.cursor)
            last: dict[str, str] = cursor["last"]  # model version → month that triggered retraining
            requests = []
            alerts = failed_check_alerts(context.instance, spec, cursor["after_id"])
            blocker = retraining_blocker(spec, duckdb) if alerts else None
            for alert in alerts:
                if blocker is not None:
                    context.log.warning(
                        f"{alert.check} {alert.partition}: not retraining, {blocker}"
                    )
                    continue
                previous = last.get(alert.model_version)
                if (
                    previous is not None
                    and spec.kind == "events"
                    and 0
                    <= months_between(
                        date.fromisoformat(previous), date.fromisoformat(alert.partition)
                    )
                    < RETRAIN_COOLDOWN_MONTHS
                ):
                    context.log.info(
                        f"{alert.check} {alert.partition} v{alert.model_version}: cooldown after {previous}"
                    )
                    continue
                last[alert.model_version] = alert.partition
                requests.append(
                    dg.RunRequest(
                        run_key=f"retrain:{alert.check}:{alert.partition}:v{alert.model_version}",
                        tags={
                            TAG_TRIGGER: f"{alert.check}@{alert.partition}",
                            "churn/alert_model_version": alert.model_version,
                        },
                    )
                )
            after_id = max([cursor["after_id"], *(a.record_id for a in alerts)])
            return dg.SensorResult(
                run_requests=requests,
                skip_reason=blocker if alerts and not requests else None,
                cursor=json.dumps({"after_id": after_id, "last": last}),
            )

    return retraining_sensor
