"""Configuration of the scoring service: one validated object, built from ``CHURN_*`` variables.

Shared locations (MLflow tracking URI, DuckDB file) default to the platform's own settings
(``churn_assets.settings``), so the service reads the same registry and offline store as the
Dagster assets without repeating their defaults. API keys are never defaulted: a service
without keys would either be open or unusable, and both should fail at start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from churn_assets.lib.datasets import load_declarations
from churn_assets.settings import settings_from_env

DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_IDS_CEILING = 1000
"""Protocol ceiling of ids + inline rows per ``/score`` call; configs may only lower it."""


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class ServingConfig(BaseModel):
    """Everything :func:`churn_assets.serving.create_app` needs (see ``docs/deploy.md``)."""

    model_config = ConfigDict(frozen=True)

    ENV: ClassVar[dict[str, str]] = {
        "datasets": "CHURN_SERVING_DATASETS",
        "api_keys": "CHURN_API_KEYS",
        "mlflow_tracking_uri": "CHURN_MLFLOW_TRACKING_URI",
        "duckdb_path": "CHURN_DUCKDB_PATH",
        "redis_url": "CHURN_REDIS_URL",
        "reload_interval_seconds": "CHURN_RELOAD_INTERVAL_SECONDS",
        "max_ids_per_request": "CHURN_MAX_IDS_PER_REQUEST",
        "max_body_bytes": "CHURN_MAX_BODY_BYTES",
        "max_upload_bytes": "CHURN_MAX_UPLOAD_BYTES",
        "offline_table": "CHURN_OFFLINE_TABLE",
        "offline_lock_timeout_seconds": "CHURN_OFFLINE_LOCK_TIMEOUT_SECONDS",
        "redis_timeout_seconds": "CHURN_REDIS_TIMEOUT_SECONDS",
        "redis_max_connections": "CHURN_REDIS_MAX_CONNECTIONS",
        "batch_chunk_rows": "CHURN_BATCH_CHUNK_ROWS",
    }
    """The environment variable behind every field (``docs/deploy.md`` lists them all)."""

    redis_url: str = "redis://127.0.0.1:6390/0"  # the platform's default CHURN_REDIS_URL
    datasets: tuple[str, ...] = Field(min_length=1)
    mlflow_tracking_uri: str
    api_keys: frozenset[str] = Field(min_length=1, repr=False)
    reload_interval_seconds: float = Field(default=30.0, gt=0)
    max_ids_per_request: int = Field(default=MAX_IDS_CEILING, ge=1, le=MAX_IDS_CEILING)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=256 << 20, ge=1024)
    duckdb_path: Path | None = None
    offline_table: str = ""
    """A table name template (``{dataset}`` is replaced); empty: each dataset's declared
    scoring table (``<ds>_features.features_monthly``, or the snapshot's features)."""
    offline_lock_timeout_seconds: float = Field(default=10.0, ge=0)
    redis_timeout_seconds: float = Field(default=1.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)
    batch_chunk_rows: int = Field(default=50_000, ge=1)

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not DATASET_NAME.match(name)]
        if bad:
            raise ValueError(f"dataset names must match {DATASET_NAME.pattern}: {bad}")
        return value

    @field_validator("api_keys")
    @classmethod
    def _usable_keys(cls, value: frozenset[str]) -> frozenset[str]:
        if any(len(key) < 16 for key in value):
            raise ValueError("every API key needs at least 16 characters")
        return value

    @field_validator("offline_table")
    @classmethod
    def _table_template(cls, value: str) -> str:
        if value and (not re.fullmatch(r"[A-Za-z0-9_.{}]+", value) or "{dataset}" not in value):
            raise ValueError("offline_table must be a table name template containing {dataset}")
        return value

    def table_for(self, dataset: str) -> str:
        if self.offline_table:
            return self.offline_table.format(dataset=dataset)
        return load_declarations()[dataset].scoring_table

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingConfig:
        """Read ``CHURN_*`` variables; lists are comma-separated."""
        env = os.environ if environ is None else environ
        settings = settings_from_env(env)
        values: dict[str, object] = {
            "mlflow_tracking_uri": settings.mlflow_tracking_uri,
            "duckdb_path": settings.duckdb_path,
        }
        values.update({field: env[name] for field, name in cls.ENV.items() if env.get(name)})
        for field in ("datasets", "api_keys"):
            values[field] = _csv(env.get(cls.ENV[field]))
        return cls.model_validate(values)

    @classmethod
    def explain(cls, error: ValidationError) -> str:
        """A validation error in terms of the variables an operator sets."""
        lines = [
            f"{cls.ENV.get(str(e['loc'][0]), e['loc'][0]) if e['loc'] else 'config'}: {e['msg']}"
            for e in error.errors()
        ]
        return "invalid serving configuration:\n  " + "\n  ".join(lines)


class ServerConfig(BaseModel):
    """How ``python -m churn_assets.serving`` runs uvicorn (not part of the app itself)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    workers: Annotated[int, Field(ge=1)] = 1
    log_level: str = "info"
    access_log: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if environ is None else environ
        names = {
            "host": "CHURN_SERVING_HOST",
            "port": "CHURN_SERVING_PORT",
            "workers": "CHURN_SERVING_WORKERS",
            "log_level": "CHURN_SERVING_LOG_LEVEL",
            "access_log": "CHURN_SERVING_ACCESS_LOG",
        }
        return cls.model_validate({f: env[n] for f, n in names.items() if env.get(n)})
