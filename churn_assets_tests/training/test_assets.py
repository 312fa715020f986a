"""The training assets through Dagster, with a tiny upstream asset standing in for features."""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb
import mlflow
import pytest
from churn_assets.defs.training.assets import build_training_assets
from mlflow import MlflowClient

from churn_assets.lib.registry_models import load_champion
from churn_assets.lib.training_set import TrainingSet
from churn_assets.settings import get_settings

# One XGBoost thread: pytest-xdist workers already use both cores (OpenMP oversubscription
# makes boosting crawl).
TINY = {"n_trials": 3, "timeout_seconds": 60.0, "max_rounds": 150, "n_jobs": 1}


def _upstream(dataset: str, ts: TrainingSet) -> dg.AssetsDefinition:
    @dg.asset(name=f"{dataset}_training_set", group_name="features")
    def training_set() -> TrainingSet:
        return ts

    return training_set


def _run_config(dataset: str) -> dict[str, Any]:
    extra = {"validation_folds": 2} if dataset == "retail" else {}
    return {
        "ops": {
            f"{dataset}_baseline_model": {"config": {"n_bootstrap": 50, **extra}},
            f"{dataset}_xgboost_model": {"config": TINY},
            # 300 test rows make a 10-bin ECE noisy; the gate's rules have their own tests.
            f"{dataset}_model_promotion": {"config": {"max_calibration_error": 0.5}},
        }
    }


@pytest.mark.parametrize("dataset", ["telco", "retail"])
def test_training_graph_materializes(
    dataset: str, request: pytest.FixtureRequest, resources: dict[str, Any]
) -> None:
    ts: TrainingSet = request.getfixturevalue(f"{dataset}_small")
    result = dg.materialize(
        [_upstream(dataset, ts), *build_training_assets(dataset)],
        resources=resources,
        run_config=_run_config(dataset),
    )
    assert result.success

    candidate = result.output_for_node(f"{dataset}_xgboost_model")
    assert candidate["version"] == "1"
    promotion = result.output_for_node(f"{dataset}_model_promotion")
    assert promotion["promoted"], promotion["reasons"]
    assert promotion["champion_version"] == "1"

    materializations = {
        m.asset_key.to_user_string(): m.metadata
        for m in result.get_asset_materialization_events()
        for m in [m.event_specific_data.materialization]
    }
    assert "mlflow_run_id" in materializations[f"{dataset}_xgboost_model"]
    assert "data:image/png;base64" in materializations[f"{dataset}_xgboost_model"]["plots"].value
    assert "Decision" in materializations[f"{dataset}_model_promotion"]["decision_table"].value
    checks = {c.check_name for c in result.get_asset_check_evaluations()}
    assert checks == {"beats_baseline", "meets_target_auc"}

    client = MlflowClient()
    name = f"churn-{dataset}"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
    champion = load_champion(dataset)
    assert champion is not None
    assert champion.training_set_version == ts.version
    assert champion.features == list(ts.features)
    run = mlflow.get_run(candidate["run_id"])
    assert run.data.tags["training_set.path"] == str(ts.path)

    with duckdb.connect(str(get_settings().duckdb_path), read_only=True) as con:
        rows = con.execute(
            f"SELECT count(*), count(driver_3) FROM training.{dataset}_shap_drivers"
        ).fetchone()
    assert rows is not None and rows[0] > 0 and rows[0] == rows[1]
