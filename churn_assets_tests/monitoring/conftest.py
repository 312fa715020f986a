"""The monitoring loop's isolated project (tmp home, DuckDB, MLflow, Dagster instance).

Training a champion takes a few seconds even on the synthetic store, so the environment is
module-scoped; the ``xdist_group`` mark in each module keeps its tests on one worker (see
:func:`pytest_collection_modifyitems` for why that needs help on pytest 9.2). The project's
settings are built for the tmp home and handed to the definitions as resources: nothing is
patched into the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from mlflow import MlflowClient

from churn_assets.definitions import build_definitions
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.partitions import partitions_name
from churn_assets.resources import MLflowResource, build_resources
from churn_assets.settings import ChurnSettings
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.monitoring.fixtures import (
    month_keys,
    synthetic_feature_store,
    write_feature_store,
)
from churn_assets_tests.training.fixtures import mlflow_template, seed_mlflow_store

FAST_TRAINING_WISHES: dict[str, dict[str, Any]] = {
    "retail_baseline_model": {"n_bootstrap": 20, "validation_folds": 2},
    "retail_xgboost_model": {
        "n_trials": 2,
        "timeout_seconds": 30,
        "max_rounds": 150,
        "n_bootstrap": 20,
        "n_jobs": 1,
        "validation_folds": 2,
    },
    "retail_deep_model": {"n_trials": 1, "max_epochs": 10},
    "retail_model_promotion": {"max_calibration_error": 0.5},
    "retail_shap_explanations": {"max_rows_for_plots": 200},
}
"""Two Optuna trials and a small bootstrap: the retraining path, not model quality, is tested.

Filtered by each asset's config schema (:func:`fast_training_config`), so these tests follow
the training stage's knobs as they move between its assets instead of breaking on them."""


def fast_training_config(defs: dg.Definitions) -> dict[str, Any]:
    ops: dict[str, Any] = {}
    for name, wishes in FAST_TRAINING_WISHES.items():
        schema = defs.resolve_assets_def(name).op.config_schema
        fields = set(getattr(schema.config_type, "fields", {}) or {}) if schema else set()
        ops[name] = {"config": {k: v for k, v in wishes.items() if k in fields}}
    # The budget must bind wherever the knobs live: a dropped n_trials would train for minutes.
    assert ops["retail_xgboost_model"]["config"].get("n_trials") == 2, ops
    return {"ops": ops}


@dataclass
class MonitoringEnv:
    spec: DatasetSpec
    settings: ChurnSettings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    resources: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.resources = build_resources(self.settings)

    def mlflow(self) -> MlflowClient:
        """A client on this project's store (another module may have pointed MLflow elsewhere)."""
        resource: MLflowResource = self.resources["mlflow"]
        resource.configure()
        return MlflowClient()

    def run_job(self, name: str, **kwargs: Any) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(name)
        return job.execute_in_process(instance=self.instance, **kwargs)

    def train(self, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        return self.run_job(
            self.spec.key("retraining_job"), run_config=fast_training_config(self.defs), tags=tags
        )

    def month(self, partition: str) -> dg.ExecuteInProcessResult:
        """The whole monitoring job of one date: features at T, scores, drift, performance."""
        return self.run_job(self.spec.key("monitoring_job"), partition_key=partition)

    def score(self, partition: str) -> dg.ExecuteInProcessResult:
        """Only features at T and scores (the monitoring job's first two steps): tests about
        scores need not render a drift report."""
        return self.run_job(
            self.spec.key("monitoring_job"),
            partition_key=partition,
            asset_selection=[
                dg.AssetKey(self.spec.key("features_monthly")),
                dg.AssetKey(self.spec.key("scores")),
            ],
        )

    def maturity(self, partition: str) -> dg.ExecuteInProcessResult:
        return self.run_job(self.spec.key("label_maturity_job"), partition_key=partition)

    def sensor_context(self, cursor: str | None) -> dg.SensorEvaluationContext:
        return dg.build_sensor_context(
            instance=self.instance, cursor=cursor, resources=self.resources
        )


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mlflow_template(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def monitoring_env(
    tmp_path_factory: pytest.TempPathFactory, mlflow_store_template: Path
) -> Iterator[MonitoringEnv]:
    """Synthetic retail feature store + a champion trained by the real training assets."""
    home = tmp_path_factory.mktemp("churn_home")
    settings = settings_for(home)
    seed_mlflow_store(settings, mlflow_store_template)
    spec = load_declarations()["retail"]
    write_feature_store(spec, settings.duckdb_path, synthetic_feature_store(spec))
    (home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        # The raw asset registers the observation dates its load supports; here the store is
        # written directly, so the dates are registered directly too.
        instance.add_dynamic_partitions(partitions_name(spec), month_keys())
        env = MonitoringEnv(spec, settings, build_definitions(settings), instance)
        trained = env.train()
        assert trained.success
        yield env
