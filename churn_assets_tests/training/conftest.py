"""Isolated state for training tests: MLflow, Optuna and DuckDB all live under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import AlertNotifier, DuckDBResource, MLflowResource
from churn_assets.settings import get_settings
from churn_assets_tests.training.fixtures import (
    synthetic_retail_training_set,
    telco_training_set,
)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every piece of state at tmp_path; restore MLflow's global URI afterwards."""
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    mlflow.set_tracking_uri(None)


@pytest.fixture
def resources(state: Path) -> dict[str, Any]:
    settings = get_settings()
    return {
        "mlflow": MLflowResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=str(settings.mlflow_artifact_root),
        ),
        "duckdb": DuckDBResource(path=str(settings.duckdb_path)),
        "notifier": AlertNotifier(),
    }


@pytest.fixture
def mlflow_resource(resources: dict[str, Any]) -> MLflowResource:
    resource: MLflowResource = resources["mlflow"]
    resource.setup()
    return resource


@pytest.fixture(scope="session")
def telco_small(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    return telco_training_set(tmp_path_factory.mktemp("ts"), sample=1500)


@pytest.fixture(scope="session")
def retail_small(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    return synthetic_retail_training_set(tmp_path_factory.mktemp("ts"))
