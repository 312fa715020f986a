"""Automation failures reach people: a failed run, or a sensor tick that errors, goes to the
notifier (log line and webhook) with a link to the run or the sensor."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from churn_assets.resources import AlertNotifier
from churn_assets.settings import ChurnSettings


@contextmanager
def notify_on_error(
    notifier: AlertNotifier, settings: ChurnSettings, sensor: str
) -> Iterator[None]:
    """Around a sensor's evaluation: an exception is sent to the notifier, then re-raised, so
    the tick still fails visibly in the UI and somebody hears about it."""
    try:
        yield
    except Exception as error:
        notifier.notify(
            "sensor_tick_failed",
            {
                "sensor": sensor,
                "error": f"{type(error).__name__}: {error}",
                "link": f"{settings.ui_base_url}/automation/sensors/{sensor}",
            },
        )
        raise


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    monitor_all_code_locations=False,
    description="Every failed run of this code location reaches the notifier with a link.",
)
def run_failure_alert_sensor(
    context: dg.RunFailureSensorContext, settings: ChurnSettings, notifier: AlertNotifier
) -> None:
    run = context.dagster_run
    notifier.notify(
        "run_failed",
        {
            "job": run.job_name,
            "run_id": run.run_id,
            "link": settings.run_url(run.run_id),
            "error": context.failure_event.message,
            "tags": {k: v for k, v in run.tags.items() if k.startswith(("churn/", "dataset"))},
        },
    )
