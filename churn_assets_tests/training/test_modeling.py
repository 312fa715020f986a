"""Splits, reproducibility and the logged model's round trip through MLflow."""

from __future__ import annotations

from datetime import date, timedelta

import mlflow
import numpy as np
import pytest

from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.evaluation import evaluate
from churn_assets.lib.months import months_between, shift_months
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource

HORIZON = 90


def _oot_split(ts: TrainingSet, **overrides: object) -> modeling.DataSplit:
    kwargs: dict = {
        "train_end": date(2011, 3, 1),
        "test_start": date(2011, 6, 1),
        "test_end": date(2011, 9, 1),
        "horizon_days": HORIZON,
        "n_val_folds": 2,
        **overrides,
    }
    return modeling.split_out_of_time(ts, ts.frame(), **kwargs)


def _train_and_score(ts: TrainingSet, storage: str | None, study: str) -> dict[str, float]:
    split = modeling.split_random(ts, ts.frame(), seed=42)
    tuning = modeling.tune_xgboost(
        ts,
        split,
        n_trials=3,
        timeout_seconds=None,
        seed=42,
        n_jobs=1,
        storage=storage,
        study_name=study,
        max_rounds=150,
    )
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(ts, tuning.params, seed=42, n_jobs=1),
        ts,
        split,
        calibration="isotonic",
        threshold=0.2,
    )
    ev = evaluate(
        split.y_test,
        model.predict_proba(split.x_test)[:, 1],
        cost_false_positive=1,
        cost_false_negative=4,
        n_bootstrap=50,
        seed=42,
    )
    return {**ev.metrics, "cv_auc": tuning.cv_auc}


def test_same_seed_and_data_give_identical_metrics(telco_small: TrainingSet) -> None:
    first = _train_and_score(telco_small, None, "a")
    second = _train_and_score(telco_small, None, "b")
    assert first == second


def test_persisted_study_is_topped_up_not_extended(telco_small: TrainingSet, tmp_path) -> None:
    """Re-running with the same budget reuses the stored trials: same result, no drift."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = _train_and_score(telco_small, storage, "churn-telco-v1")
    again = _train_and_score(telco_small, storage, "churn-telco-v1")
    assert first == again


def test_out_of_time_split_respects_the_label_horizon(retail_small: TrainingSet) -> None:
    split = _oot_split(retail_small)
    frame = retail_small.frame().sort(["observation_date", "customer_id"])
    train_dates = frame["observation_date"].filter(frame["observation_date"] <= date(2011, 3, 1))
    test_dates = frame["observation_date"].gather(split.test_index)
    assert train_dates.max() + timedelta(days=HORIZON) <= test_dates.min()
    assert len(split.x_train) == len(train_dates)
    # Each validation fold only learns from dates whose labels matured before it.
    dates = np.array(train_dates.to_list(), dtype="datetime64[D]")
    for fit_rows, val_rows in split.folds:
        assert len(np.unique(dates[val_rows])) == 1
        assert dates[fit_rows].max() + np.timedelta64(HORIZON, "D") <= dates[val_rows].min()


def test_out_of_time_split_refuses_a_leaking_gap(retail_small: TrainingSet) -> None:
    with pytest.raises(ValueError, match="label leakage"):
        _oot_split(retail_small, train_end=date(2011, 4, 1))


def test_random_split_is_stratified_and_disjoint(telco_small: TrainingSet) -> None:
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01
    assert len(split.x_test) == round(0.2 * len(telco_small.frame()))
    for fit_rows, val_rows in split.folds:
        assert not set(fit_rows) & set(val_rows)


def test_logged_model_loads_back_and_reproduces_predictions(
    telco_small: TrainingSet, mlflow_resource: MLflowResource
) -> None:
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    model, _ = modeling.fit_calibrated(
        modeling.baseline_pipeline(telco_small, seed=42),
        telco_small,
        split,
        calibration="sigmoid",
        threshold=0.2,
    )
    example = split.x_train.head(5)
    logged = registry.log_model_run(
        experiment_id=mlflow_resource.experiment_id("churn-telco"),
        run_name="roundtrip",
        model=model,
        ts=telco_small,
        input_example=example,
        params={"model": "logistic"},
        metrics={"roc_auc": 0.5},
        figures={},
        tags={"role": "test"},
        register_as="churn-telco",
    )
    assert logged.version == "1"
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    predicted = np.asarray(pyfunc.predict(example))
    np.testing.assert_allclose(predicted, model.predict_proba(example))
    # Scorers rebuild rows from raw data with feature_frame: same schema, same scores.
    rows = telco_small.frame().head(5)
    rebuilt = modeling.feature_frame(
        rows, telco_small.numeric_features, telco_small.categorical_features
    )
    np.testing.assert_allclose(np.asarray(pyfunc.predict(rebuilt)), model.predict_proba(rebuilt))
    loaded = registry.load_model_version("telco", "1")
    assert loaded.training_set_version == telco_small.version
    assert loaded.features == list(telco_small.features)


def test_anchored_split_reproduces_the_documented_dates_and_always_keeps_the_gap() -> None:
    assert modeling.anchored_out_of_time_dates(date(2011, 9, 1), 90) == (
        date(2011, 3, 1),
        date(2011, 6, 1),
        date(2011, 9, 1),
    )
    for month in range(1, 13):
        train_end, test_start, _ = modeling.anchored_out_of_time_dates(date(2011, month, 1), 90)
        assert train_end + timedelta(days=90) <= test_start


def _months(first: date, last: date) -> list[date]:
    return [shift_months(first, n) for n in range(months_between(first, last) + 1)]


def test_retraining_is_blocked_until_training_dates_span_the_horizon() -> None:
    """Replay as of 2011-02-01: labels matured up to 2010-11-01, so the anchored split trains
    on 2010-03 .. 2010-05 only, and no fold can train 90 days before its validation month."""
    early = _months(date(2010, 3, 1), date(2010, 11, 1))
    reason = modeling.out_of_time_blocker(early, 90)
    assert reason is not None and "2010-03-01 .. 2010-05-01" in reason
    assert modeling.out_of_time_blocker([], 90) == "no observation date has a matured label yet"
    # One more matured month puts train_end at 2010-06-01, 92 days after the first date.
    assert modeling.out_of_time_blocker([*early, date(2010, 12, 1)], 90) is None
    assert modeling.out_of_time_blocker(_months(date(2010, 3, 1), date(2011, 9, 1)), 90) is None
