"""Resampled evaluation: repeated splits and rolling origins run the training recipes on every
round, and the summary and the asset's metadata agree with the per-round figures."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import pytest

from churn_assets.defs.evaluation.resampled import build_resampled_evaluation
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.modeling import recipes, resampling
from churn_assets.lib.modeling.protocol import Protocol
from churn_assets.lib.training_set import TrainingSet

TINY_XGBOOST = recipes.Budget(n_trials=2, timeout_seconds=60.0, max_rounds=40)


def _assert_summary_matches_rounds(result: resampling.Resampled) -> None:
    for summary in result.summary:
        auc = np.array(
            [r["test_roc_auc"] for r in result.rounds if r["candidate"] == summary["candidate"]]
        )
        assert summary["rounds"] == auc.size
        assert summary["mean_test_roc_auc"] == pytest.approx(auc.mean())
        assert summary["std_test_roc_auc"] == pytest.approx(auc.std(ddof=1))
        assert summary["min_test_roc_auc"] == pytest.approx(auc.min())
        assert summary["max_test_roc_auc"] == pytest.approx(auc.max())


def test_repeated_splits_tune_and_test_every_candidate_per_seed(telco_small: TrainingSet) -> None:
    protocol = Protocol(kind="random", n_bootstrap=20)
    rounds = resampling.repeated_split_rounds(protocol, 2)
    assert [r.protocol.seed for r in rounds] == [0, 1]
    frame = telco_small.frame()
    result = resampling.evaluate_rounds(
        telco_small,
        frame,
        rounds,
        {recipes.BASELINE: recipes.Budget(), recipes.XGBOOST: TINY_XGBOOST},
        study_prefix="test",
    )
    assert result.kind == "repeated splits"
    assert [s["candidate"] for s in result.summary] == ["baseline", "xgboost", "selected"]
    _assert_summary_matches_rounds(result)
    by_round: dict[str, dict[str, dict[str, Any]]] = {}
    for row in result.rounds:
        by_round.setdefault(row["round"], {})[row["candidate"]] = row
    assert list(by_round) == ["seed 0", "seed 1"]
    for rows in by_round.values():
        assert rows["baseline"]["test_rows"] == pytest.approx(0.2 * frame.height, abs=1)
        # The selected recipe is the validation winner's, test figures unseen.
        winner = max(("baseline", "xgboost"), key=lambda c: rows[c]["validation_roc_auc"])
        assert rows["selected"]["round_winner"] == winner
        assert rows["selected"]["test_roc_auc"] == rows[winner]["test_roc_auc"]
        assert all(0.5 < r["test_roc_auc"] <= 1.0 for r in rows.values())
    # Different seeds hold out different rows: the two rounds' figures differ.
    assert by_round["seed 0"]["baseline"]["test_roc_auc"] != pytest.approx(
        by_round["seed 1"]["baseline"]["test_roc_auc"]
    )
    assert resampling.resampling_plot(result, 0.85).startswith(b"\x89PNG")


def test_rolling_origins_train_only_on_labels_matured_before_each_test_month(
    retail_small: TrainingSet,
) -> None:
    protocol = Protocol(kind="out_of_time", horizon_days=90, validation_folds=2, n_bootstrap=20)
    frame = retail_small.frame()
    rounds = resampling.rounds_for(protocol, frame, retail_small, 2)
    assert [r.label for r in rounds] == ["2011-08", "2011-09"]
    for r in rounds:
        p = r.protocol
        assert p.test_start == p.test_end
        assert p.train_end is not None and p.test_start is not None
        assert p.train_end + timedelta(days=90) <= p.test_start
        assert p.train_end + timedelta(days=90 + 31) > p.test_start  # the newest such month
    result = resampling.evaluate_rounds(
        retail_small, frame, rounds, {recipes.BASELINE: recipes.Budget()}, study_prefix="test"
    )
    assert result.kind == "rolling origin"
    _assert_summary_matches_rounds(result)
    train_rows = [r["train_rows"] for r in result.rounds if r["candidate"] == "baseline"]
    assert train_rows[0] < train_rows[1]
    assert date(2011, 9, 1) in {r.protocol.test_start for r in rounds}


def test_the_evaluation_asset_reports_per_candidate_figures_and_a_plot(
    telco_spec: DatasetSpec, telco_small: TrainingSet
) -> None:
    @dg.asset(name=telco_spec.key("training_set"), group_name="features")
    def training_set() -> TrainingSet:
        return telco_small

    asset = build_resampled_evaluation(telco_spec)
    assert asset.key == dg.AssetKey("telco_repeated_split_evaluation")
    config = {
        "n_seeds": 2,
        "candidates": ["baseline", "xgboost"],
        "baseline": {"n_bootstrap": 20},
        "xgboost": {"n_trials": 2, "max_rounds": 40},
    }
    result = dg.materialize(
        [training_set, asset],
        run_config={"ops": {asset.node_def.name: {"config": config}}},
    )
    assert result.success
    output: resampling.Resampled = result.output_for_node(asset.node_def.name)
    _assert_summary_matches_rounds(output)
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == asset.key]
    meta = event.materialization.metadata
    records = {r.data["candidate"]: r.data for r in meta["summary"].records}
    assert set(records) == {"baseline", "xgboost", "selected"}
    for summary in output.summary:
        record = records[summary["candidate"]]
        assert record["mean_test_roc_auc"] == round(summary["mean_test_roc_auc"], 4)
        assert record["meets_target"] == (
            summary["mean_test_roc_auc"] >= telco_spec.targets.roc_auc
        )
    assert meta["n_rounds"].value == 2
    assert meta["selected_mean_test_roc_auc"].value == round(
        records["selected"]["mean_test_roc_auc"], 4
    )
    assert "data:image/png;base64," in meta["plots"].value
