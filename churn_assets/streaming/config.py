"""Configuration of the stream worker: one validated object from ``CHURN_STREAM_*`` variables.

Shared locations (Redis, MLflow, DuckDB, the alert webhook) come from the platform's settings
(``churn_assets.settings``), so the worker reads the same stores as the Dagster assets and the
API without repeating their defaults.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class StreamConfig(BaseModel):
    """Knobs of ``python -m churn_assets.streaming`` (``docs/streaming.md`` lists them)."""

    model_config = ConfigDict(frozen=True)

    ENV: ClassVar[dict[str, str]] = {
        "consumer": "CHURN_STREAM_CONSUMER",
        "batch_size": "CHURN_STREAM_BATCH_SIZE",
        "block_ms": "CHURN_STREAM_BLOCK_MS",
        "claim_idle_ms": "CHURN_STREAM_CLAIM_IDLE_MS",
        "alert_threshold": "CHURN_STREAM_ALERT_THRESHOLD",
        "scores_maxlen": "CHURN_STREAM_SCORES_MAXLEN",
        "reload_interval_seconds": "CHURN_STREAM_RELOAD_INTERVAL_SECONDS",
    }

    consumer: str = Field(default_factory=lambda: f"{socket.gethostname()}-worker")
    """The consumer's name in the group. Keep it across restarts: a restarted worker first
    re-reads the entries it had been given and not yet acknowledged."""
    batch_size: int = Field(default=500, ge=1, le=10_000)
    """Entries per XREADGROUP, applied in one script call and scored in one model call."""
    block_ms: int = Field(default=200, ge=1)
    claim_idle_ms: int = Field(default=30_000, ge=1)
    """Entries another consumer holds unacknowledged this long are claimed (XAUTOCLAIM): their
    consumer is presumed dead."""
    alert_threshold: float = Field(default=0.8, gt=0, le=1)
    """An alert goes out when a customer's probability reaches this from below."""
    scores_maxlen: int = Field(default=1_000_000, ge=1000)
    """Approximate cap on the scores stream (XADD MAXLEN ~), so Redis memory stays bounded."""
    reload_interval_seconds: float = Field(default=30.0, gt=0)
    """How often the worker asks the registry whether the champion changed."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamConfig:
        env = os.environ if environ is None else environ
        return cls.model_validate({f: env[n] for f, n in cls.ENV.items() if env.get(n)})
