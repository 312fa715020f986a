"""Champion models of the served datasets: loading, warm-up and hot reload.

Each dataset's live model is one :class:`ServedModel` reference in a dict. A reload loads and
warms the new version *beside* the old one (in a worker thread), then replaces the reference
with one assignment. A request reads the reference once and keeps that object to the end, so
a swap never fails a request or mixes two versions in one response; the old model is freed
when its last request finishes. A version that fails to load leaves the current one serving
and is reported (``/v1/models``, logs) instead of taking the service down.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import polars as pl

from churn_assets.lib import registry_models as registry
from churn_assets.lib.training_set import DATA_FILE
from churn_assets.serving.scoring import Scorer

log = logging.getLogger(__name__)

TRAINING_SET_TAG_PREFIX = "training_set."


@dataclass(frozen=True)
class ServedModel:
    """A registered version, warmed up, with what ``/v1/models`` reports about it."""

    dataset: str
    name: str
    version: str
    alias: str
    run_id: str
    scorer: Scorer
    training_set_version: str
    provenance_id: str | None
    training_set_tags: dict[str, str]
    metrics: dict[str, float]
    trained_at: datetime | None
    loaded_at: datetime


def load_served_model(dataset: str, version: str) -> ServedModel:
    """Load ``churn-<dataset>`` version ``version`` from the registry and warm it up.

    The run's ``training_set.*`` tags name the training data; its rows give the score
    distribution the risk deciles are ranked against. Blocking: call from a worker thread.
    """
    from mlflow import MlflowClient

    champion = registry.load_model_version(dataset, version)
    run = MlflowClient().get_run(champion.run_id)
    tags = {k: v for k, v in run.data.tags.items() if k.startswith(TRAINING_SET_TAG_PREFIX)}
    reference = pl.read_parquet(champion.training_set_path / DATA_FILE)
    finished = run.info.end_time or run.info.start_time
    return ServedModel(
        dataset=dataset,
        name=registry.registered_model_name(dataset),
        version=champion.version,
        alias=registry.CHAMPION,
        run_id=champion.run_id,
        scorer=Scorer(champion.model, reference),
        training_set_version=champion.training_set_version,
        provenance_id=tags.get("training_set.provenance_id"),
        training_set_tags=tags,
        metrics=dict(run.data.metrics),
        trained_at=None if finished is None else datetime.fromtimestamp(finished / 1000, UTC),
        loaded_at=datetime.now(UTC),
    )


@dataclass(frozen=True)
class ReloadOutcome:
    dataset: str
    previous_version: str | None
    version: str | None
    changed: bool
    error: str | None = None


@dataclass
class Champions:
    """The live model per dataset plus the reload machinery (poller and on-demand)."""

    datasets: tuple[str, ...]
    tracking_uri: str
    _live: dict[str, ServedModel] = field(default_factory=dict)
    _errors: dict[str, str] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _use_registry(self) -> None:
        """Point MLflow at the registry this service reads.

        MLflow's URIs are process-global and ``registry_models`` relies on them, so every
        registry call re-asserts them: nothing else in the process can redirect the service.
        """
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)

    def get(self, dataset: str) -> ServedModel | None:
        return self._live.get(dataset)

    def last_error(self, dataset: str) -> str | None:
        return self._errors.get(dataset)

    def why_not_ready(self, dataset: str) -> str:
        reason = self._errors.get(dataset, "loading")
        return f"{dataset}: no champion loaded ({reason})"

    def not_ready(self) -> list[str]:
        """Why the service cannot score every dataset yet (empty when it can)."""
        return [self.why_not_ready(ds) for ds in self.datasets if ds not in self._live]

    def _refresh_one(self, dataset: str) -> ReloadOutcome:
        """Blocking: compare the registry's champion with the live one, load it if new."""
        current = self._live.get(dataset)
        previous = None if current is None else current.version
        try:
            self._use_registry()
            wanted = registry.champion_version(dataset)
            if wanted is None:
                raise LookupError(f"{registry.registered_model_name(dataset)} has no @champion")
            loaded = None if wanted == previous else load_served_model(dataset, wanted)
        except Exception as exc:  # any failure keeps the old model serving
            message = f"{type(exc).__name__}: {exc}"
            self._errors[dataset] = message
            log.error("loading the champion of %s failed: %s", dataset, message)
            return ReloadOutcome(dataset, previous, previous, changed=False, error=message)
        self._errors.pop(dataset, None)  # the registry answered and the live model is current
        if loaded is None:
            return ReloadOutcome(dataset, previous, previous, changed=False)
        self._live[dataset] = loaded  # the swap: one reference assignment
        log.info("%s: serving %s v%s (was %s)", dataset, loaded.name, loaded.version, previous)
        return ReloadOutcome(dataset, previous, loaded.version, changed=True)

    async def refresh(self, datasets: tuple[str, ...] | None = None) -> list[ReloadOutcome]:
        """Check (and load) new champions, one reload at a time, off the event loop."""
        async with self._lock:
            return [
                await asyncio.to_thread(self._refresh_one, dataset)
                for dataset in datasets or self.datasets
            ]

    async def poll(self, interval_seconds: float) -> None:
        """Load every champion now, then look for new ones every ``interval_seconds``."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval_seconds)
