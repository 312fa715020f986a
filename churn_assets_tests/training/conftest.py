"""Training tests: every test has its own project home (the root ``settings`` fixture), so
MLflow, Optuna and DuckDB all live under its tmp_path; the training sets are shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource
from churn_assets.settings import ChurnSettings
from churn_assets_tests.training.fixtures import (
    mlflow_template,
    seed_mlflow_store,
    synthetic_retail_training_set,
    telco_training_set,
)


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlflow_template(tmp_path_factory.getbasetemp())


@pytest.fixture
def mlflow_resource(
    settings: ChurnSettings, resources: dict[str, Any], mlflow_store_template: Path
) -> Iterator[MLflowResource]:
    """MLflow pointed at this test's home (an empty store copied from the template); the
    process-wide URIs are emptied afterwards, so a later test that forgot to configure MLflow
    fails instead of writing into this deleted tmp folder."""
    seed_mlflow_store(settings, mlflow_store_template)
    resource: MLflowResource = resources["mlflow"]
    resource.configure()
    yield resource
    mlflow.set_tracking_uri("")
    mlflow.set_registry_uri("")


@pytest.fixture(scope="session")
def telco_small(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    return telco_training_set(tmp_path_factory.mktemp("ts"), sample=1500)


@pytest.fixture(scope="session")
def retail_small(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    return synthetic_retail_training_set(tmp_path_factory.mktemp("ts"))


@pytest.fixture(scope="session")
def telco_spec(specs: dict[str, DatasetSpec]) -> DatasetSpec:
    return specs["telco"]


@pytest.fixture(scope="session")
def retail_spec(specs: dict[str, DatasetSpec]) -> DatasetSpec:
    return specs["retail"]
