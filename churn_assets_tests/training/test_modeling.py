"""Splits, reproducibility, explanations and the logged model's round trip through MLflow."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
import shap
from sklearn.linear_model import LogisticRegression
from xgboost import DMatrix, XGBClassifier

from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.evaluation import evaluate
from churn_assets.lib.explain import top_drivers
from churn_assets.lib.modeling.protocol import Candidate, Protocol, choose, comparison_rows
from churn_assets.lib.months import months_between, shift_months
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource

HORIZON = 90
FAST_XGBOOST = {"max_depth": 3, "n_estimators": 60, "learning_rate": 0.1}


def _oot_split(ts: TrainingSet, **overrides: Any) -> modeling.DataSplit:
    kwargs: dict[str, Any] = {
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


def test_same_seed_and_data_give_identical_metrics_and_a_persisted_study_is_topped_up(
    telco_small: TrainingSet, tmp_path: Path
) -> None:
    """Same seed and data: identical tuning, model and metrics, whether the Optuna study lives
    in memory or in storage. Re-running against the stored study with the same budget reuses
    its trials (topped up to the budget, not extended): same result, no drift."""
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    in_memory = _train_and_score(telco_small, None, "a")
    first = _train_and_score(telco_small, storage, "churn-telco-v1")
    again = _train_and_score(telco_small, storage, "churn-telco-v1")
    assert in_memory == first == again
    study = optuna.load_study(study_name="churn-telco-v1", storage=storage)
    assert len(study.trials) == 3


def test_out_of_time_split_respects_the_label_horizon(retail_small: TrainingSet) -> None:
    split = _oot_split(retail_small)
    frame = retail_small.frame().sort(["observation_date", "customer_id"])
    train_dates = frame["observation_date"].filter(frame["observation_date"] <= date(2011, 3, 1))
    test_dates = frame["observation_date"].gather(split.test_index)
    assert train_dates.max() + timedelta(days=HORIZON) <= test_dates.min()  # type: ignore[operator]
    assert len(split.x_train) == len(train_dates)
    # Each validation fold only learns from dates whose labels matured before it.
    dates = np.array(train_dates.to_list(), dtype="datetime64[D]")
    assert len(split.folds) == 2
    for fit_rows, val_rows in split.folds:
        assert len(np.unique(dates[val_rows])) == 1
        assert dates[fit_rows].max() + np.timedelta64(HORIZON, "D") <= dates[val_rows].min()


def test_out_of_time_split_refuses_a_leaking_gap(retail_small: TrainingSet) -> None:
    with pytest.raises(ValueError, match="label leakage"):
        _oot_split(retail_small, train_end=date(2011, 4, 1))


def test_anchored_protocol_splits_like_the_documented_dates(retail_small: TrainingSet) -> None:
    """The events protocol with no dates anchors on the newest matured month (2011-09-01)."""
    anchored = Protocol(kind="out_of_time", horizon_days=HORIZON, validation_folds=2)
    split = anchored.split(retail_small, retail_small.frame())
    explicit = _oot_split(retail_small)
    np.testing.assert_array_equal(split.test_index, explicit.test_index)
    assert split.description == explicit.description


def test_random_split_is_stratified_and_disjoint(telco_small: TrainingSet) -> None:
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    assert abs(split.y_train.mean() - split.y_test.mean()) < 0.01
    assert len(split.x_test) == round(0.2 * len(telco_small.frame()))
    assert len(set(split.test_index)) == len(split.x_test)
    assert len(split.x_train) + len(split.x_test) == len(telco_small.frame())
    for fit_rows, val_rows in split.folds:
        assert not set(fit_rows) & set(val_rows)
        assert set(fit_rows) | set(val_rows) == set(range(len(split.x_train)))


def _candidate(name: str, logged: registry.LoggedModel, ts: TrainingSet) -> Candidate:
    return Candidate(
        name=name,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        training_set_version=ts.version,
        protocol=Protocol(kind="random", seed=42),
        metrics={"roc_auc": 0.5},
        validation_auc=0.5,
    )


def _scored(name: str, validation: float, test: float) -> Candidate:
    metrics = {"roc_auc": test, "roc_auc_ci_low": test - 0.01, "roc_auc_ci_high": test, "ece": 0.0}
    return Candidate(
        name, f"run-{name}", f"runs:/{name}", "v1", Protocol("random"), metrics, validation
    )


def test_choose_reads_validation_figures_only() -> None:
    """The best validation AUC wins whatever the test AUCs say; a tie goes to the simpler
    (first) candidate; the comparison shows both figures and marks the choice."""
    baseline, xgboost = _scored("baseline", 0.80, 0.90), _scored("xgboost", 0.82, 0.70)
    assert choose([baseline, xgboost]) is xgboost
    flipped = [_scored("baseline", 0.80, 0.10), _scored("xgboost", 0.82, 0.30)]
    assert choose(flipped).name == "xgboost"
    assert choose([_scored("baseline", 0.8, 0.6), _scored("xgboost", 0.8, 0.9)]).name == "baseline"
    rows = comparison_rows([baseline, xgboost], xgboost)
    assert [
        (r["candidate"], r["validation_roc_auc"], r["test_roc_auc"], r["chosen"]) for r in rows
    ] == [
        ("baseline", 0.8, 0.9, False),
        ("xgboost", 0.82, 0.7, True),
    ]


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
    )
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    predicted = np.asarray(pyfunc.predict(example))
    np.testing.assert_allclose(predicted, model.predict_proba(example))
    # Scorers rebuild rows from raw data with feature_frame: same schema, same scores.
    rows = telco_small.frame().head(5)
    rebuilt = modeling.feature_frame(
        rows, telco_small.numeric_features, telco_small.categorical_features
    )
    np.testing.assert_allclose(np.asarray(pyfunc.predict(rebuilt)), model.predict_proba(rebuilt))

    version = registry.register("telco", _candidate("baseline", logged, telco_small), {})
    assert version == "1"
    loaded = registry.load_model_version("telco", "1")
    assert loaded.training_set_version == telco_small.version
    assert loaded.training_set_path == telco_small.path
    assert loaded.features == list(telco_small.features)
    np.testing.assert_allclose(loaded.model.predict_proba(rebuilt), model.predict_proba(rebuilt))
    np.testing.assert_allclose(loaded.model.contributions(rebuilt), model.contributions(rebuilt))
    assert registry.load_champion("telco") is None  # registered, not promoted


def test_xgboost_contributions_are_treeshap_summed_per_raw_feature(
    telco_small: TrainingSet,
) -> None:
    """``contributions`` equals SHAP's own TreeExplainer on the booster, one-hot columns summed
    back to their raw feature, and (local accuracy) adds up to the booster's log-odds."""
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(telco_small, FAST_XGBOOST, seed=42, n_jobs=1),
        telco_small,
        split,
        calibration="isotonic",
        threshold=0.2,
    )
    x = split.x_test.head(200)
    pre = model.pipeline.named_steps["features"]
    booster = model.pipeline.named_steps["model"]
    assert isinstance(booster, XGBClassifier)
    encoded = np.asarray(pre.transform(x[model.features]), dtype=float)
    explainer = shap.TreeExplainer(booster.get_booster())
    encoded_shap = np.asarray(explainer.shap_values(encoded))
    index = modeling.raw_feature_index(pre, len(model.numeric_features))
    assert encoded_shap.shape == (len(x), len(index))
    expected = np.zeros((len(x), len(model.features)))
    for column, feature in enumerate(index):
        expected[:, feature] += encoded_shap[:, column]

    contributions = model.contributions(x)
    assert contributions.shape == (len(x), len(model.features))
    np.testing.assert_allclose(contributions, expected, atol=1e-5, rtol=0)
    # One-hot columns really were folded: some categorical feature gets a non-zero share.
    categorical = [model.features.index(c) for c in model.categorical_features]
    assert np.abs(contributions[:, categorical]).sum() > 0
    margin = booster.get_booster().predict(DMatrix(encoded), output_margin=True)
    np.testing.assert_allclose(
        contributions.sum(axis=1) + float(np.ravel(explainer.expected_value)[0]),
        margin,
        atol=1e-4,
    )


def test_linear_contributions_sum_to_logit_difference_vs_background(
    telco_small: TrainingSet,
) -> None:
    """Linear SHAP: coef x (x - training mean) per encoded column, so each row's contributions
    add up to its logit minus the logit of the background (the mean training row)."""
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    model, _ = modeling.fit_calibrated(
        modeling.baseline_pipeline(telco_small, seed=42),
        telco_small,
        split,
        calibration="sigmoid",
        threshold=0.2,
    )
    assert model.background is not None
    x = split.x_test.head(200)
    estimator = model.pipeline.named_steps["model"]
    assert isinstance(estimator, LogisticRegression)
    logits = model.pipeline.decision_function(x[model.features])
    background_logit = estimator.decision_function(model.background[None, :])[0]
    contributions = model.contributions(x)
    assert contributions.shape == (len(x), len(model.features))
    np.testing.assert_allclose(contributions.sum(axis=1), logits - background_logit, atol=1e-8)
    # The background is the mean training row: contributions average to zero there.
    train_contributions = model.contributions(split.x_train)
    np.testing.assert_allclose(train_contributions.mean(axis=0), 0.0, atol=1e-8)
    # And SHAP's own linear explainer (interventional, same background) agrees per column.
    pre = model.pipeline.named_steps["features"]
    encoded_train = np.asarray(pre.transform(split.x_train[model.features]), dtype=float)
    encoded = np.asarray(pre.transform(x[model.features]), dtype=float)
    # Every training row as background (the masker's default keeps a sample of 100).
    masker = shap.maskers.Independent(encoded_train, max_samples=len(encoded_train))
    explainer = shap.LinearExplainer(estimator, masker)
    encoded_shap = np.asarray(explainer.shap_values(encoded))
    expected = np.zeros_like(contributions)
    index = modeling.raw_feature_index(pre, len(model.numeric_features))
    for column, feature in enumerate(index):
        expected[:, feature] += encoded_shap[:, column]
    np.testing.assert_allclose(contributions, expected, atol=1e-8)


def test_drivers_of_a_row_with_an_unknown_feature_show_it_as_null(
    telco_small: TrainingSet,
) -> None:
    """A left-censored window is NULL in the features: the model imputes it, and the reasons
    show its value as null, not as the text "nan" or a float among strings."""
    split = modeling.split_random(telco_small, telco_small.frame(), seed=42)
    model, _ = modeling.fit_calibrated(
        modeling.baseline_pipeline(telco_small, seed=42),
        telco_small,
        split,
        calibration="none",
        threshold=0.2,
    )
    rows = telco_small.frame().head(50)
    feature = model.numeric_features[0]
    rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias(feature))
    drivers = top_drivers(model, rows, k=len(model.features))
    assert drivers["driver_1_value"].dtype == pl.String
    unknown = [
        drivers[f"driver_{i}_value"][row]
        for row in range(len(drivers))
        for i in range(1, len(model.features) + 1)
        if drivers[f"driver_{i}"][row] == feature
    ]
    assert len(unknown) == len(rows)
    assert all(value is None for value in unknown)


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


def _seasonal_panel(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two years of month starts whose churn rate depends on the calendar month (winter high,
    summer low) and rose in the second year, plus one feature that tells churners apart."""
    rng = np.random.default_rng(seed)
    firsts = [date(2010 + i // 12, i % 12 + 1, 1) for i in range(24)]
    dates, x, y = [], [], []
    for i, first in enumerate(firsts):
        rate = (0.55 if first.month in (11, 12, 1, 2) else 0.2) + (0.1 if i >= 12 else 0.0)
        # Label shift, the prior's assumption: the rate moves, the signal given the label not.
        churned = rng.random(400) < rate
        signal = rng.normal(churned.astype(float), 1.0)
        dates.append(np.full(400, np.datetime64(first, "D")))
        x.append(signal)
        y.append(churned.astype(int))
    return np.concatenate(dates), np.concatenate(x), np.concatenate(y)


def test_season_balancing_gives_every_date_one_rate_and_the_prior_puts_each_month_back() -> None:
    """Season-balanced weights leave every observation date with the overall churn rate (and
    its own total weight); a model fitted with them, shifted by the seasonal prior, predicts
    on average each calendar month's newest observed rate, not the overall one."""
    from churn_assets.lib.modeling.estimators import (
        SEASON_FEATURE,
        SeasonalPrior,
        calendar_months,
        season_balancing_weights,
    )

    dates, signal, y = _seasonal_panel()
    weights = season_balancing_weights(dates, y)
    overall = y.mean()
    for day in np.unique(dates):
        rows = dates == day
        assert np.average(y[rows], weights=weights[rows]) == pytest.approx(overall)
        assert weights[rows].sum() == pytest.approx(rows.sum())
    # Unweighted, the months' rates really differ (else this test proves nothing).
    rates = [y[dates == day].mean() for day in np.unique(dates)]
    assert max(rates) - min(rates) > 0.3

    balanced = LogisticRegression().fit(signal[:, None], y, sample_weight=weights)
    raw = balanced.predict_proba(signal[:, None])[:, 1]
    prior = SeasonalPrior().fit(dates, y)
    months = calendar_months(dates)
    frame = pd.DataFrame({SEASON_FEATURE: months})
    shifted = prior.transform(raw, frame)
    second_year = dates >= np.datetime64("2011-01-01")
    for month in (1, 7, 12):
        rows = second_year & (months == month)
        newest = y[rows].mean()
        older = y[~second_year & (months == month)].mean()
        assert shifted[rows].mean() == pytest.approx(newest, abs=0.04)
        # The newest year's rate wins over the older one, and over the balanced overall rate.
        assert abs(shifted[rows].mean() - newest) < abs(shifted[rows].mean() - older)
        assert abs(shifted[rows].mean() - newest) < abs(raw[rows].mean() - newest)
    # A calendar month the training dates never reached (or no month) keeps the raw score.
    unseen = SeasonalPrior().fit(dates[months <= 6], y[months <= 6])
    np.testing.assert_allclose(unseen.shift(np.array([9.0, np.nan])), 0.0)
