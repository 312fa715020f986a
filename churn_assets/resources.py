"""Typed resources shared by every dataset's graph: settings, DuckDB, MLflow and the notifier."""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb

if TYPE_CHECKING:
    import redis

from churn_assets.lib.file_lock import file_lock
from churn_assets.settings import ChurnSettings

log = logging.getLogger(__name__)


class DuckDBResource(dg.ConfigurableResource):
    """The project's DuckDB file, one writer or many readers at a time, across processes.

    The ``duckdb`` pool (limit 1) schedules writing steps, but Dagster's sqlite instance claims
    pool slots without row locks, so two processes starting together can both win the slot.
    A ``flock`` on a sidecar file mirrors DuckDB's own rule (exclusive to write, shared to read)
    and makes the loser wait instead of failing with "Could not set lock on file".
    """

    path: str
    lock_timeout_seconds: float = 1800.0

    @contextmanager
    def lock(self, exclusive: bool = True) -> Iterator[None]:
        """Hold the file's cross-process lock; the dbt asset wraps ``dbt build`` in it."""
        with file_lock(
            Path(self.path), exclusive=exclusive, timeout_seconds=self.lock_timeout_seconds
        ):
            yield

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.lock(exclusive=not read_only):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(self.path, read_only=read_only)
            try:
                yield con
            finally:
                con.close()


class MLflowResource(dg.ConfigurableResource):
    """Local MLflow tracking and registry; plain ``mlflow`` calls, configured once per step."""

    tracking_uri: str
    artifact_root: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.configure()

    def configure(self) -> None:
        """Point the process's MLflow client at this store (also for sensors and tests)."""
        import mlflow

        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(
                parents=True, exist_ok=True
            )
        Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """Create the experiment on first use with its artifacts under the project state."""
        import mlflow

        existing = mlflow.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        location = Path(self.artifact_root, name).resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location)


class AlertNotifier(dg.ConfigurableResource):
    """Always logs; also POSTs JSON to a webhook when ``CHURN_ALERT_WEBHOOK_URL`` is set."""

    webhook_url: str = ""
    timeout_seconds: float = 5.0

    def notify(self, event: str, payload: dict[str, Any]) -> bool:
        body = {"event": event, **payload}
        log.warning("churn_assets alert %s: %s", event, json.dumps(body, default=str))
        if not self.webhook_url:
            return False
        request = urllib.request.Request(
            self.webhook_url,
            data=json.dumps(body, default=str).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                return 200 <= response.status < 300
        except OSError as exc:
            log.error("alert webhook %s failed: %s", self.webhook_url, exc)
            return False


class RedisResource(dg.ConfigurableResource):
    """The online store's Redis (``CHURN_REDIS_URL``; ``make run`` starts a project-local one)."""

    url: str
    timeout_seconds: float = 5.0

    def client(self) -> redis.Redis:
        """A binary client (the online store packs rows as bytes)."""
        import redis

        return redis.Redis.from_url(
            self.url,
            socket_timeout=self.timeout_seconds,
            socket_connect_timeout=self.timeout_seconds,
        )


def build_resources(settings: ChurnSettings) -> dict[str, Any]:
    """Every resource the graph needs, from one settings object."""
    return {
        "settings": settings,
        "duckdb": DuckDBResource(path=settings.duckdb_path),
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
        ),
        "notifier": AlertNotifier(webhook_url=settings.alert_webhook_url),
        "redis": RedisResource(url=settings.redis_url),
    }
