"""Event-driven automation: new data in, months scored, labels matured, models retrained.

* ``retail_landing_sensor`` watches the landing folder. Each file is fingerprinted (sha256);
  a bad file goes to quarantine with ``<name>.reason.txt`` and launches nothing, a good one is
  moved to the accepted folder and launches ``retail_ingest_job`` with the month it makes
  scoreable in its tags. A replayed session change (``replay start``/``reset``) also launches
  one ingest run so the raw table follows the new as-of date.
* ``retail_month_after_ingest_sensor`` (run-status sensor) launches the partitioned month job
  for that month, and the label-maturity job for the month whose horizon just passed, only
  after ingestion succeeded: ordering a partitioned run after an unpartitioned one is what a
  single run cannot express.
* ``retail_retraining_sensor`` reads failed ``drift_alert``/``performance_decay`` check
  evaluations and launches the retraining job once per alert, with a cooldown.
"""

import json
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
from duckdb import CatalogException

from churn_assets.defs.monitoring.drift import DRIFT_CHECK
from churn_assets.defs.monitoring.jobs import (
    retail_ingest_job,
    retail_label_maturity_job,
    retail_monthly_monitoring_job,
    retail_retraining_job,
)
from churn_assets.defs.monitoring.performance import DECAY_CHECK
from churn_assets.lib import modeling
from churn_assets.lib.contracts import ContractViolation, validate_retail_file
from churn_assets.lib.metadata import sha256_file
from churn_assets.lib.months import month_after, months_between
from churn_assets.partitions import observation_months
from churn_assets.replay import read_state
from churn_assets.resources import AlertNotifier, DuckDBResource
from churn_assets.settings import Settings, get_settings

TAG_SOURCE_FILE = "churn/source_file"
TAG_SHA256 = "churn/sha256"
TAG_MONTH = "churn/observation_month"
TAG_DATA_AS_OF = "churn/data_as_of"
TAG_TRIGGER = "churn/retraining_trigger"
FULL_HISTORY = "full-history"
RETRAIN_COOLDOWN_MONTHS = 2
TRAINING_SPINE = "features.fct_retail_training_spine"
"""After retraining on an alert for month T, alerts on the same model before T + 2 months are
only logged: the retrained model needs a month of its own before it can be judged."""


# --------------------------------------------------------------------------------------------
# Landing folder → ingestion
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandingDecision:
    """What happened to one landed file; pure data so tests can assert on it."""

    name: str
    sha256: str
    accepted: bool
    reason: str = ""
    observation_month: date | None = None
    data_as_of: str | None = None


def replay_session(settings: Settings) -> str:
    state = read_state(settings)
    return f"{state.session}@{state.as_of}" if state else FULL_HISTORY


def quarantine(settings: Settings, path: Path, reason: str) -> Path:
    """Move aside with a human-readable reason next to it; the original name is kept."""
    settings.quarantine_dir.mkdir(parents=True, exist_ok=True)
    target = settings.quarantine_dir / path.name
    shutil.move(str(path), target)
    (settings.quarantine_dir / f"{path.name}.reason.txt").write_text(reason + "\n")
    return target


def inspect_landed_file(path: Path, sha: str, as_of: date | None) -> LandingDecision:
    """Validate against the raw contract and work out which observation month it completes.

    While replaying, events before the as-of date are already in the raw table (from the
    archive), so a file reaching back before it would double-count them: quarantined too.
    """
    try:
        validate_retail_file(path)
    except ContractViolation as error:
        return LandingDecision(
            path.name, sha, accepted=False, reason=f"contract violation: {error}"
        )
    first_event, last_event = (
        pl.scan_parquet(path)
        .select(pl.col("invoice_ts").min(), pl.col("invoice_ts").max().alias("last"))
        .collect()
        .row(0)
    )
    if last_event is None:
        return LandingDecision(path.name, sha, accepted=False, reason="file holds no events")
    if as_of is not None and first_event.date() < as_of:
        return LandingDecision(
            path.name,
            sha,
            accepted=False,
            reason=f"overlaps history: first event {first_event} is before the replay as-of "
            f"date {as_of}, whose events are already loaded from the archive",
        )
    # Features at T use events strictly before T: the month after the newest event is complete.
    month = month_after(last_event.date())
    return LandingDecision(
        path.name, sha, True, observation_month=month, data_as_of=last_event.isoformat()
    )


def landed_files(settings: Settings) -> list[Path]:
    """Finished files only: writers use dot-prefixed temp names and rename when done."""
    if not settings.landing_dir.exists():
        return []
    return sorted(p for p in settings.landing_dir.glob("*.parquet") if not p.name.startswith("."))


@dg.sensor(
    name="retail_landing_sensor",
    job=retail_ingest_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New retail event files in the landing folder: validate, quarantine or accept, "
    "then ingest. Idempotent on file content (sha256) within a replay session.",
)
def retail_landing_sensor(
    context: dg.SensorEvaluationContext, notifier: AlertNotifier
) -> dg.SensorResult:
    settings = get_settings()
    cursor = json.loads(context.cursor) if context.cursor else {}
    state = read_state(settings)
    session = replay_session(settings)
    seen: dict[str, str] = cursor.get("seen", {}) if cursor.get("session") == session else {}
    requests: list[dg.RunRequest] = []

    if cursor.get("session") not in (None, session) or (not cursor and session != FULL_HISTORY):
        # The as-of date moved (replay start/reset): reload raw so it reflects the new history.
        requests.append(
            dg.RunRequest(
                run_key=f"replay-session:{session}", tags={"churn/replay_session": session}
            )
        )

    for path in landed_files(settings):
        sha = sha256_file(path)
        if sha in seen:
            quarantine(
                settings,
                path,
                f"duplicate: identical content already ingested as {seen[sha]} (sha256 {sha})",
            )
            context.log.info(
                f"{path.name}: duplicate of {seen[sha]}, quarantined, nothing launched"
            )
            continue
        decision = inspect_landed_file(path, sha, state.as_of if state else None)
        if not decision.accepted:
            quarantine(settings, path, decision.reason)
            notifier.notify(
                "retail_file_quarantined",
                {"file": path.name, "sha256": sha, "reason": decision.reason},
            )
            continue
        settings.accepted_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), settings.accepted_dir / path.name)
        seen[sha] = path.name
        assert decision.observation_month is not None
        requests.append(
            dg.RunRequest(
                run_key=f"{session}:{sha}",
                tags={
                    TAG_SOURCE_FILE: path.name,
                    TAG_SHA256: sha,
                    TAG_MONTH: decision.observation_month.isoformat(),
                    TAG_DATA_AS_OF: decision.data_as_of or "",
                },
            )
        )
        context.log.info(f"{path.name}: accepted; makes {decision.observation_month} scoreable")
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps({"session": session, "seen": seen})
    )


# --------------------------------------------------------------------------------------------
# Ingestion succeeded → the new month, and the month whose labels just matured
# --------------------------------------------------------------------------------------------


# One data drop advances the as-of date by about a month, but a 90-day horizon does not line
# up with calendar months: a drop can mature zero, one or two observation months. Looking back
# 45 days catches every month that matured since the previous drop; re-measuring one twice is
# harmless (the asset replaces its partition).
MATURITY_LOOKBACK_DAYS = 45


def newly_mature_months(
    data_as_of: date, horizon_days: int, lookback_days: int = MATURITY_LOOKBACK_DAYS
) -> list[str]:
    """Observation months T whose labels became known recently: T + horizon in
    (as_of - lookback, as_of]."""
    return [
        k
        for k in observation_months.get_partition_keys()
        if data_as_of - timedelta(days=lookback_days)
        < date.fromisoformat(k) + timedelta(days=horizon_days)
        <= data_as_of
    ]


@dg.run_status_sensor(
    name="retail_month_after_ingest_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[retail_ingest_job],
    request_jobs=[retail_monthly_monitoring_job, retail_label_maturity_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After an ingest run for a landed file succeeds: score/drift the month it made "
    "scoreable, and measure realized performance of the month whose labels just matured.",
)
def retail_month_after_ingest_sensor(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
    run = context.dagster_run
    month = run.tags.get(TAG_MONTH)
    if not month:
        return []
    requests = []
    keys = set(observation_months.get_partition_keys())
    if month in keys:
        requests.append(
            dg.RunRequest(
                run_key=f"{run.run_id}:month:{month}",
                job_name=retail_monthly_monitoring_job.name,
                partition_key=month,
                tags={TAG_SOURCE_FILE: run.tags.get(TAG_SOURCE_FILE, "")},
            )
        )
    as_of = run.tags.get(TAG_DATA_AS_OF)
    matured = (
        newly_mature_months(date.fromisoformat(as_of[:10]), get_settings().label_horizon_days)
        if as_of
        else []
    )
    requests += [
        dg.RunRequest(
            run_key=f"{run.run_id}:mature:{mature}",
            job_name=retail_label_maturity_job.name,
            partition_key=mature,
        )
        for mature in matured
        if mature != month
    ]
    return requests


# --------------------------------------------------------------------------------------------
# Drift / decay alerts → retraining
# --------------------------------------------------------------------------------------------

ALERT_CHECKS = (
    dg.AssetCheckKey(dg.AssetKey("retail_drift_report"), DRIFT_CHECK),
    dg.AssetCheckKey(dg.AssetKey("retail_realized_performance"), DECAY_CHECK),
)


@dataclass(frozen=True)
class Alert:
    record_id: int
    check: str
    partition: str
    model_version: str


def failed_check_alerts(instance: dg.DagsterInstance, after_id: int) -> list[Alert]:
    """Failed alert-check evaluations newer than ``after_id``, oldest first.

    Reads the 100 newest evaluations per check and filters on ``passed``: the sensor ticks every
    30 s with a cursor, so no new failure can fall outside that window.
    """
    alerts = []
    for key in ALERT_CHECKS:
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


def retraining_blocker(duckdb: DuckDBResource) -> str | None:
    """Why a retraining run would fail on the current matured history (see the split rules)."""
    if not Path(duckdb.path).exists():
        return f"{duckdb.path} does not exist yet"
    with duckdb.connect(read_only=True) as con:
        try:
            rows = con.execute(
                f"SELECT DISTINCT observation_date FROM {TRAINING_SPINE} ORDER BY 1"
            ).fetchall()
        except CatalogException:
            return f"{TRAINING_SPINE} does not exist yet"
    matured = [row[0] for row in rows]
    return modeling.out_of_time_blocker(matured, get_settings().label_horizon_days)


@dg.sensor(
    name="retail_retraining_sensor",
    job=retail_retraining_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launch retraining (training set → train → evaluate → promotion gate) once per "
    "failed drift_alert / performance_decay check, with a cooldown per model version.",
)
def retail_retraining_sensor(
    context: dg.SensorEvaluationContext, duckdb: DuckDBResource
) -> dg.SensorResult:
    if context.cursor is None:
        # First evaluation: alerts already in history (e.g. from `make run`'s backfill of every
        # month) are the baseline, not news; retraining on all of them at once helps nobody.
        baseline = max((a.record_id for a in failed_check_alerts(context.instance, 0)), default=0)
        return dg.SensorResult(cursor=json.dumps({"after_id": baseline, "last": {}}))
    cursor = json.loads(context.cursor)
    last: dict[str, str] = cursor["last"]  # model version → month that triggered retraining
    requests = []
    alerts = failed_check_alerts(context.instance, cursor["after_id"])
    blocker = retraining_blocker(duckdb) if alerts else None
    for alert in alerts:
        if blocker is not None:
            context.log.warning(f"{alert.check} {alert.partition}: not retraining, {blocker}")
            continue
        previous = last.get(alert.model_version)
        if (
            previous is not None
            and 0
            <= months_between(date.fromisoformat(previous), date.fromisoformat(alert.partition))
            < RETRAIN_COOLDOWN_MONTHS
        ):
            context.log.info(
                f"{alert.check} {alert.partition} v{alert.model_version}: in cooldown after {previous}"
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
