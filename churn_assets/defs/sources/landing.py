"""A dataset's landing sensor and what happens to a delivery whose ingest fails.

The sensor runs exactly the contract the raw asset runs (:func:`read_file`), so anything one
door accepts the other accepts too. Each file is handled on its own: any exception while
handling one file quarantines that file with the reason (and the traceback), and the other
files of the tick go on. A valid file moves to ``pending/`` and gets an ingest run; the load
moves it to ``accepted/`` only once it succeeded, and a failed ingest run sends it to
quarantine with the run's error (``ingest_failure_sensor``), so one bad file never blocks later
ones. Every pending file is re-requested on every tick under the same run key: Dagster launches
each key once, so a request lost with a crashed tick is recovered, and none is launched twice.
"""

import json
import traceback
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

from churn_assets.defs.monitoring.alerts import notify_on_error
from churn_assets.lib import landing
from churn_assets.lib.contracts import ContractViolation, read_file
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.metadata import sha256_file
from churn_assets.lib.months import month_after
from churn_assets.replay import read_state
from churn_assets.resources import AlertNotifier
from churn_assets.settings import ChurnSettings

TAG_DELIVERY = "churn/delivery"
TAG_SHA256 = "churn/sha256"
TAG_MONTH = "churn/observation_month"
TAG_DATA_AS_OF = "churn/data_as_of"
TAG_SESSION = "churn/replay_session"
FULL_HISTORY = "full-history"


def inspect_delivery(spec: DatasetSpec, path: Path) -> dict[str, str]:
    """Validate with the raw asset's own contract; the run tags of an accepted delivery
    (for events: the observation month it completes and the newest event time)."""
    frame = read_file(spec, path)
    if frame.is_empty():
        raise ContractViolation(str(path), ["no data rows: an empty delivery is never valid"])
    tags = {TAG_SHA256: sha256_file(path)}
    if spec.kind == "events":
        last = frame["event_ts"].max()
        assert isinstance(last, datetime)
        # Features at T use events strictly before T: the month after the newest event is complete.
        tags |= {TAG_MONTH: month_after(last.date()).isoformat(), TAG_DATA_AS_OF: last.isoformat()}
    return tags


def _reason(error: BaseException) -> str:
    if isinstance(error, ContractViolation):
        return f"contract violation: {error}"
    trace = "".join(traceback.format_exception(error))
    return f"could not be handled ({type(error).__name__}: {error})\n\n{trace}"


def replay_session(settings: ChurnSettings, spec: DatasetSpec) -> str:
    state = read_state(settings, spec.name) if spec.kind == "events" else None
    return f"{state.session}@{state.as_of}" if state else FULL_HISTORY


def _ingest_request(spec: DatasetSpec, pending: Path, tags: dict[str, str]) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{spec.name}:{pending.name}:{tags.get(TAG_SHA256, '')[:16]}",
        run_config={
            "ops": {spec.key(f"raw_{spec.raw_table}"): {"config": {"deliveries": [str(pending)]}}}
        },
        tags={**tags, TAG_DELIVERY: str(pending)},
    )


def build_landing_sensor(spec: DatasetSpec, ingest_job: "AssetJob") -> dg.SensorDefinition:
    name = spec.key("landing_sensor")

    @dg.sensor(
        name=name,
        job=ingest_job,
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"New {spec.name} files in data/landing/{spec.name}/incoming: validated by "
        "the raw asset's contract, quarantined with the reason, or ingested (idempotent on "
        "events, not bytes).",
    )
    def landing_sensor(
        context: dg.SensorEvaluationContext, settings: ChurnSettings, notifier: AlertNotifier
    ) -> dg.SensorResult:
        with notify_on_error(notifier, settings, name):
            folders = settings.landing(spec.name).ensure()
            cursor = json.loads(context.cursor) if context.cursor else {}
            session = replay_session(settings, spec)
            requests: list[dg.RunRequest] = []
            if cursor.get("session") not in (None, session) or (
                not cursor and session != FULL_HISTORY
            ):
                # The as-of date moved (replay start/reset): reload raw for the new history.
                requests.append(
                    dg.RunRequest(
                        run_key=f"{spec.name}:replay-session:{session}",
                        run_config={
                            "ops": {
                                spec.key(f"raw_{spec.raw_table}"): {
                                    "config": {"allow_shrink": True}
                                }
                            }
                        },
                        tags={TAG_SESSION: session},
                    )
                )
            for path in landing.waiting(folders):
                try:
                    tags = inspect_delivery(spec, path)
                except Exception as error:  # one file's failure never stops the others
                    reason = _reason(error)
                    moved = landing.quarantine(folders, path, reason)
                    context.log.warning(f"{path.name}: quarantined as {moved}: {reason[:300]}")
                    notifier.notify(
                        f"{spec.name}_file_quarantined", {"file": str(moved), "reason": reason}
                    )
                    continue
                pending = landing.move_to_pending(folders, path, tags)
                context.log.info(f"{path.name}: valid, ingesting from {pending}")
            requests += [
                _ingest_request(spec, pending, tags) for pending, tags in landing.pending(folders)
            ]
            return dg.SensorResult(run_requests=requests, cursor=json.dumps({"session": session}))

    return landing_sensor


def build_ingest_failure_sensor(spec: DatasetSpec, ingest_job: "AssetJob") -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=spec.key("ingest_failure_sensor"),
        monitored_jobs=[ingest_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"A failed {spec.name} ingest run sends its delivery to quarantine with the "
        "run's error, so one bad file never blocks later ones.",
    )
    def ingest_failure(context: dg.RunFailureSensorContext, settings: ChurnSettings) -> None:
        delivery = context.dagster_run.tags.get(TAG_DELIVERY)
        if not delivery or not Path(delivery).exists():
            return
        error = context.failure_event.message or "the ingest run failed"
        landing.quarantine(
            settings.landing(spec.name),
            Path(delivery),
            f"ingest run {context.dagster_run.run_id} failed ({settings.run_url(context.dagster_run.run_id)}):\n{error}",
        )

    return ingest_failure
