"""The champion/challenger gate: pure rules, then the asset against a real MLflow registry."""

from __future__ import annotations

import logging
from typing import Any

import dagster as dg
import numpy as np
import pytest
from mlflow import MlflowClient

from churn_assets.defs.training.promotion import build_promotion
from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.modeling.protocol import Candidate, Protocol, RegisteredModel
from churn_assets.lib.promotion import PromotionDecision, decide_promotion
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource

FEATURES = ["a", "b"]
PROTOCOL = Protocol(kind="random", seed=42)


def _decide(**overrides: Any) -> PromotionDecision:
    kwargs: dict[str, Any] = {
        "challenger_predictions": np.array([0.1, 0.9]),
        "challenger_auc": 0.85,
        "challenger_ece": 0.02,
        "challenger_features": FEATURES,
        "expected_features": FEATURES,
        "champion_auc": 0.84,
        "margin": 0.005,
        "max_calibration_error": 0.05,
        **overrides,
    }
    return decide_promotion(**kwargs)


def test_first_model_is_promoted() -> None:
    assert _decide(champion_auc=None).promote


def test_better_by_margin_is_promoted_and_worse_refused() -> None:
    assert _decide(challenger_auc=0.85, champion_auc=0.84).promote
    assert not _decide(challenger_auc=0.843, champion_auc=0.84).promote
    refused = _decide(challenger_auc=0.80, champion_auc=0.84)
    assert not refused.promote
    assert any("beats_champion: FAILED" in r for r in refused.reasons)


@pytest.mark.parametrize(
    "overrides",
    [
        {"challenger_predictions": np.array([np.nan, 0.2])},
        {"challenger_ece": 0.2},
        {"challenger_features": ["a"]},
    ],
)
def test_sanity_failures_block_promotion(overrides: dict[str, Any]) -> None:
    decision = _decide(champion_auc=None, **overrides)
    assert not decision.promote
    assert "❌" in decision.markdown()


def _register(
    ts: TrainingSet,
    model: modeling.ChurnClassifier,
    split: modeling.DataSplit,
    mlflow_resource: MLflowResource,
) -> RegisteredModel:
    """Log and register a model as the selection asset does, and return what it hands over."""
    logged = registry.log_model_run(
        experiment_id=mlflow_resource.experiment_id("churn-telco"),
        run_name="gate-test",
        model=model,
        ts=ts,
        input_example=split.x_train.head(3),
        params={},
        metrics={},
        figures={},
        tags={"role": "candidate"},
    )
    candidate = Candidate(
        name="xgboost",
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        training_set_version=ts.version,
        protocol=PROTOCOL,
        metrics={"roc_auc": 0.5},
        validation_auc=0.5,
    )
    version = registry.register(ts.dataset, candidate, {})
    return RegisteredModel(ts.dataset, candidate.name, version, candidate, [])


def _gate(
    spec: DatasetSpec, ts: TrainingSet, registered: RegisteredModel, resources: dict[str, Any]
) -> dict[str, Any]:
    """The real promotion asset, its two inputs stood in by the given values."""

    @dg.asset(name=spec.key("training_set"))
    def training_set() -> TrainingSet:
        return ts

    @dg.asset(name=spec.key("model_selection"))
    def model_selection() -> RegisteredModel:
        return registered

    result = dg.materialize(
        [training_set, model_selection, build_promotion(spec)],
        resources=resources,
        run_config={
            "ops": {spec.key("model_promotion"): {"config": {"max_calibration_error": 0.2}}}
        },
    )
    assert result.success
    output: dict[str, Any] = result.output_for_node(spec.key("model_promotion"))
    return output


def _fit(
    ts: TrainingSet, split: modeling.DataSplit, params: dict[str, Any], shuffle_labels: bool = False
) -> modeling.ChurnClassifier:
    if shuffle_labels:
        rng = np.random.default_rng(0)
        split = modeling.DataSplit(**{**split.__dict__, "y_train": rng.permutation(split.y_train)})
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(ts, params, seed=42, n_jobs=1),
        ts,
        split,
        calibration="sigmoid",
        threshold=0.2,
    )
    return model


def test_gate_promotes_better_and_refuses_worse(
    telco_spec: DatasetSpec,
    telco_small: TrainingSet,
    resources: dict[str, Any],
    mlflow_resource: MLflowResource,
    caplog: pytest.LogCaptureFixture,
) -> None:
    split = PROTOCOL.split(telco_small, telco_small.frame())
    weak = {"max_depth": 1, "n_estimators": 2, "learning_rate": 0.3}
    strong = {"max_depth": 2, "n_estimators": 200, "learning_rate": 0.05}
    client = MlflowClient()

    def gate(model: modeling.ChurnClassifier) -> dict[str, Any]:
        registered = _register(telco_small, model, split, mlflow_resource)
        return _gate(telco_spec, telco_small, registered, resources)

    with caplog.at_level(logging.WARNING, logger="churn_assets.resources"):
        first = gate(_fit(telco_small, split, weak))
    assert first["promoted"] and first["champion_version"] == "1"
    assert "promotion_decision" in caplog.text

    worse = gate(_fit(telco_small, split, strong, shuffle_labels=True))
    assert not worse["promoted"] and worse["champion_version"] == "1"
    assert worse["champion_auc"] is not None and worse["challenger_auc"] < worse["champion_auc"]
    assert str(client.get_model_version_by_alias("churn-telco", "challenger").version) == "2"
    assert client.get_model_version("churn-telco", "2").tags["promotion.decision"] == "challenger"
    assert str(client.get_model_version_by_alias("churn-telco", "champion").version) == "1"

    better = gate(_fit(telco_small, split, strong))
    assert better["promoted"], better["reasons"]
    assert str(client.get_model_version_by_alias("churn-telco", "champion").version) == "3"
    champion = registry.load_champion("telco")
    assert champion is not None and champion.version == "3"
