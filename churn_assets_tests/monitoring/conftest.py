"""One isolated project (tmp home, DuckDB, MLflow, Dagster instance) per test module.

Training a champion takes a few seconds even on the synthetic store, so the environment is
module-scoped; the ``xdist_group`` mark in each module keeps its tests on one worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from churn_assets.settings import Settings, get_settings
from churn_assets_tests.monitoring.fixtures import synthetic_feature_store, write_feature_store

FAST_TRAINING_WISHES: dict[str, dict[str, Any]] = {
    "retail_baseline_model": {"n_bootstrap": 20, "validation_folds": 2},
    "retail_xgboost_model": {
        "n_trials": 2,
        "timeout_seconds": 30,
        "n_bootstrap": 20,
        "n_jobs": 2,
        "validation_folds": 2,
    },
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
    return {"ops": ops}


@dataclass
class MonitoringEnv:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance

    def run_job(self, name: str, **kwargs: Any) -> dg.ExecuteInProcessResult:
        job = self.defs.resolve_job_def(name)
        return job.execute_in_process(instance=self.instance, **kwargs)

    def train(self, tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
        return self.run_job(
            "retail_retraining_job", run_config=fast_training_config(self.defs), tags=tags
        )

    def month(self, partition: str) -> dg.ExecuteInProcessResult:
        return self.run_job("retail_monthly_monitoring_job", partition_key=partition)


@pytest.fixture(scope="module")
def isolated_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("churn_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / '.state' / 'mlflow' / 'mlflow.db'}")
        patch.delenv("CHURN_ALERT_WEBHOOK_URL", raising=False)
        get_settings.cache_clear()
        get_settings().ensure_dirs()
        yield home
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def monitoring_env(isolated_home: Path) -> Iterator[MonitoringEnv]:
    """Synthetic feature store + a champion trained by the real training assets."""
    from churn_assets.definitions import defs as load_defs

    settings = get_settings()
    write_feature_store(str(settings.duckdb_path), synthetic_feature_store())
    (isolated_home / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(isolated_home / "dagster")) as instance:
        env = MonitoringEnv(settings=settings, defs=load_defs(), instance=instance)
        assert env.train().success
        yield env
