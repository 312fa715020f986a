"""Candidate recipes: how each candidate model is tuned on a split's training part and what
pipeline is then fitted, shared by the training assets and the resampled evaluations.

A recipe only decides the pipeline and its parameters (tuning included, on the split's
validation folds); :func:`fit_calibrated` fits it and :meth:`Protocol.evaluate` scores it, the
same way for every candidate. Pure code: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.pipeline import Pipeline

from churn_assets.lib.modeling.data import DataSplit
from churn_assets.lib.modeling.estimators import baseline_pipeline, xgboost_pipeline
from churn_assets.lib.modeling.fitting import TuningResult, tune_xgboost
from churn_assets.lib.modeling.protocol import Protocol
from churn_assets.lib.training_set import TrainingSet

BASELINE, XGBOOST, DEEP = "baseline", "xgboost", "deep"
CANDIDATES = (BASELINE, XGBOOST, DEEP)


@dataclass(frozen=True)
class Budget:
    """What one candidate may spend: Optuna trials (the timeout is a safety net), XGBoost
    rounds and threads, deep epochs and early-stopping patience, the baseline's regularisation,
    and where studies persist (None: in memory). Built from the candidate's training config."""

    n_trials: int = 20
    timeout_seconds: float | None = 240.0
    max_rounds: int = 1000
    n_jobs: int = 1
    max_epochs: int = 200
    patience: int = 12
    storage: str | None = None
    regularisation_c: float = 0.1


@dataclass(frozen=True)
class Recipe:
    """A candidate ready to fit: a fresh pipeline per call, its parameters, its tuning."""

    name: str
    pipeline: Callable[[], Pipeline]
    params: dict[str, Any]
    tuning: TuningResult | None = None


def baseline_recipe(ts: TrainingSet, protocol: Protocol, budget: Budget) -> Recipe:
    """Logistic regression, class-weighted only when a score calibrator follows."""
    c = budget.regularisation_c
    return Recipe(
        BASELINE,
        lambda: baseline_pipeline(ts, seed=protocol.seed, c=c, balanced=protocol.class_weights),
        {"C": c},
    )


def xgboost_recipe(
    ts: TrainingSet, split: DataSplit, protocol: Protocol, budget: Budget, study_name: str
) -> Recipe:
    """XGBoost tuned by :func:`tune_xgboost` on the split's validation folds."""
    tuning = tune_xgboost(
        ts,
        split,
        n_trials=budget.n_trials,
        timeout_seconds=budget.timeout_seconds,
        seed=protocol.seed,
        n_jobs=budget.n_jobs,
        storage=budget.storage,
        study_name=study_name,
        weight_classes=protocol.class_weights,
        balance_seasons=protocol.balance_seasons,
        max_rounds=budget.max_rounds,
    )
    return Recipe(
        XGBOOST,
        lambda: xgboost_pipeline(ts, tuning.params, seed=protocol.seed, n_jobs=budget.n_jobs),
        dict(tuning.params),
        tuning,
    )


def deep_recipe(
    ts: TrainingSet, split: DataSplit, protocol: Protocol, budget: Budget, study_name: str
) -> Recipe:
    """The deep tabular network tuned by ``tune_deep`` (imported here: JAX loads lazily, and
    the deep package itself builds on this one)."""
    from churn_assets.lib.deep import deep_pipeline, tune_deep

    tuning = tune_deep(
        split,
        numeric=ts.numeric_features,
        categorical=ts.categorical_features,
        n_trials=budget.n_trials,
        timeout_seconds=budget.timeout_seconds,
        seed=protocol.seed,
        storage=budget.storage,
        study_name=study_name,
        weight_classes=protocol.class_weights,
        balance_seasons=protocol.balance_seasons,
        max_epochs=budget.max_epochs,
        patience=budget.patience,
    )
    return Recipe(
        DEEP,
        lambda: deep_pipeline(
            ts.numeric_features, ts.categorical_features, tuning.params, seed=protocol.seed
        ),
        dict(tuning.params),
        tuning,
    )


def recipe(
    name: str,
    ts: TrainingSet,
    split: DataSplit,
    protocol: Protocol,
    budget: Budget,
    study_name: str,
) -> Recipe:
    """The named candidate's recipe (one of :data:`CANDIDATES`)."""
    if name == BASELINE:
        return baseline_recipe(ts, protocol, budget)
    if name == XGBOOST:
        return xgboost_recipe(ts, split, protocol, budget, study_name)
    if name == DEEP:
        return deep_recipe(ts, split, protocol, budget, study_name)
    raise ValueError(f"unknown candidate {name!r}: one of {', '.join(CANDIDATES)}")
