"""The training assets of a declared dataset through Dagster (candidates → selection →
promotion → SHAP), with a tiny upstream asset standing in for the training-set snapshot."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import mlflow
import polars as pl
import pytest
from mlflow import MlflowClient

from churn_assets.defs import training
from churn_assets.defs.training.selection import TARGET_CHECK
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.modeling.protocol import Candidate, RegisteredModel
from churn_assets.lib.registry_models import load_champion
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource
from churn_assets.settings import ChurnSettings
from churn_assets_tests.training.fixtures import retail_training_set_from, synthetic_retail_frame

# One XGBoost thread: pytest-xdist workers already use both cores (OpenMP oversubscription
# makes boosting crawl).
TINY = {"n_trials": 3, "timeout_seconds": 60.0, "max_rounds": 150, "n_jobs": 1}
TINY_DEEP = {"n_trials": 2, "max_epochs": 10}
# The anchored out-of-time split tests the synthetic panel on 2011-06 .. 2011-09.
RETAIL_TEST_START, RETAIL_TEST_END = date(2011, 6, 1), date(2011, 9, 1)


def _upstream(spec: DatasetSpec, ts: TrainingSet) -> dg.AssetsDefinition:
    @dg.asset(name=spec.key("training_set"), group_name="features")
    def training_set() -> TrainingSet:
        return ts

    return training_set


def _run_config(spec: DatasetSpec, xgboost: dict[str, Any] = TINY) -> dict[str, Any]:
    extra = {"validation_folds": 2} if spec.kind == "events" else {}
    return {
        "ops": {
            spec.key("baseline_model"): {"config": {"n_bootstrap": 50, **extra}},
            spec.key("xgboost_model"): {"config": xgboost},
            spec.key("deep_model"): {"config": TINY_DEEP},
            # 300 test rows make a 10-bin ECE noisy; the gate's rules have their own tests.
            spec.key("model_promotion"): {"config": {"max_calibration_error": 0.5}},
            spec.key("shap_explanations"): {"config": {"max_rows_for_plots": 200}},
        }
    }


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        event.asset_key.to_user_string(): dict(event.materialization.metadata)
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


def _assert_comparison_lists_every_candidate(
    metadata: dict[str, Any], candidates: dict[str, Candidate]
) -> None:
    """The selection's comparison lists every candidate with its validation and test AUC,
    and marks as chosen the one with the best validation AUC."""
    records = [r.data for r in metadata["comparison"].records]
    assert [r["candidate"] for r in records] == list(training.CANDIDATES) == list(candidates)
    for record in records:
        candidate = candidates[str(record["candidate"])]
        assert record["validation_roc_auc"] == round(candidate.validation_auc, 4)
        assert record["test_roc_auc"] == round(candidate.test_auc, 4)
        assert 0.5 < float(record["validation_roc_auc"]) <= 1.0
        assert 0.5 < float(record["test_roc_auc"]) <= 1.0
    (chosen,) = [r["candidate"] for r in records if r["chosen"]]
    assert chosen == metadata["chosen"].value
    best = max(c.validation_auc for c in candidates.values())
    assert candidates[str(chosen)].validation_auc == best
    assert metadata["validation_roc_auc"].value == round(best, 4)
    for name in candidates:
        assert name in metadata["comparison_md"].value


@pytest.mark.parametrize("dataset", ["telco", "retail"])
def test_training_graph_materializes(
    dataset: str,
    specs: dict[str, DatasetSpec],
    request: pytest.FixtureRequest,
    settings: ChurnSettings,
    resources: dict[str, Any],
    mlflow_resource: MLflowResource,
) -> None:
    spec = specs[dataset]
    ts: TrainingSet = request.getfixturevalue(f"{dataset}_small")
    result = dg.materialize(
        [_upstream(spec, ts), *training.build(spec)],
        resources=resources,
        run_config=_run_config(spec),
    )
    assert result.success

    candidates: dict[str, Candidate] = {
        name: result.output_for_node(spec.key(f"{name}_model")) for name in training.CANDIDATES
    }
    baseline, xgboost = candidates["baseline"], candidates["xgboost"]
    for candidate in candidates.values():  # inherited: same rows, same costs
        assert candidate.protocol == baseline.protocol
    assert baseline.protocol.kind == spec.protocol
    registered: RegisteredModel = result.output_for_node(spec.key("model_selection"))
    assert registered.version == "1"
    assert registered.candidate in candidates.values()
    promotion = result.output_for_node(spec.key("model_promotion"))
    assert promotion["promoted"], promotion["reasons"]
    assert promotion["champion_version"] == "1"
    assert promotion["candidate"] == registered.name

    metadata = _metadata(result)
    _assert_comparison_lists_every_candidate(metadata[spec.key("model_selection")], candidates)
    for name in candidates:
        assert "mlflow_run_id" in metadata[spec.key(f"{name}_model")]
        assert "data:image/png;base64" in metadata[spec.key(f"{name}_model")]["plots"].value
    assert "Decision" in metadata[spec.key("model_promotion")]["decision_table"].value
    assert "data:image/png;base64" in metadata[spec.key("shap_explanations")]["plots"].value
    checks = {c.check_name for c in result.get_asset_check_evaluations()}
    assert checks == {TARGET_CHECK}

    client = MlflowClient()
    name = f"churn-{dataset}"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "1"
    assert client.get_model_version(name, "1").tags["candidate"] == registered.name
    champion = load_champion(dataset)
    assert champion is not None
    assert champion.training_set_version == ts.version
    assert champion.features == list(ts.features)
    assert champion.run_id == registered.candidate.run_id
    run = mlflow.get_run(xgboost.run_id)
    assert run.data.tags["training_set.path"] == str(ts.path)
    assert run.data.tags["selection.chosen"] == str(registered.name == "xgboost").lower()

    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        rows = con.execute(
            f"SELECT count(*), count(driver_3) FROM {spec.db_schema('training')}.shap_drivers"
        ).fetchone()
    newest = ts.frame().filter(pl.col("observation_date") == pl.col("observation_date").max())
    assert rows is not None and rows[0] == newest.height == rows[1]


def _select(
    spec: DatasetSpec, ts: TrainingSet, resources: dict[str, Any]
) -> dg.ExecuteInProcessResult:
    """Candidates and selection only (the part that must never read test rows)."""
    selection_keys = {spec.key(f"{c}_model") for c in training.CANDIDATES}
    selection_keys.add(spec.key("model_selection"))
    assets = [a for a in training.build(spec) if a.key.to_user_string() in selection_keys]
    config = _run_config(spec, {**TINY, "n_trials": 2})
    ops = {k: v for k, v in config["ops"].items() if k in selection_keys}
    result = dg.materialize(
        [_upstream(spec, ts), *assets], resources=resources, run_config={"ops": ops}
    )
    assert result.success
    return result


def test_selection_never_reads_test_labels(
    retail_spec: DatasetSpec,
    resources: dict[str, Any],
    mlflow_resource: MLflowResource,
    tmp_path: Path,
) -> None:
    """Two runs on the same training set except that every test label is flipped: the test
    ranking of the candidates reverses (AUC -> 1 - AUC), the validation figures and so the
    registered candidate stay exactly the same."""
    frame = synthetic_retail_frame()
    in_test = pl.col("observation_date").is_between(RETAIL_TEST_START, RETAIL_TEST_END)
    flipped = frame.with_columns(
        pl.when(in_test).then(1 - pl.col("churned")).otherwise(pl.col("churned")).alias("churned")
    )
    assert (frame["churned"] != flipped["churned"]).sum() == frame.filter(in_test).height > 0

    runs = []
    for version, data in (("original", frame), ("test-labels-flipped", flipped)):
        result = _select(retail_spec, retail_training_set_from(tmp_path, data, version), resources)
        candidates = {
            name: result.output_for_node(retail_spec.key(f"{name}_model"))
            for name in training.CANDIDATES
        }
        registered: RegisteredModel = result.output_for_node(retail_spec.key("model_selection"))
        runs.append((candidates, registered))

    (original, chosen), (perturbed, chosen_again) = runs
    assert chosen_again.name == chosen.name
    assert (chosen.version, chosen_again.version) == ("1", "2")
    for name in training.CANDIDATES:
        assert perturbed[name].validation_auc == original[name].validation_auc
        assert perturbed[name].test_auc == pytest.approx(1 - original[name].test_auc, abs=1e-9)
    # Had the test figures decided, the flip would have changed the pick.
    by_test = sorted(training.CANDIDATES, key=lambda n: original[n].test_auc)
    by_flipped_test = sorted(training.CANDIDATES, key=lambda n: perturbed[n].test_auc)
    assert by_test == by_flipped_test[::-1]
