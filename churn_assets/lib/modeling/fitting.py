"""Fitting and tuning: out-of-fold calibration and the Optuna search for XGBoost.

Reproducible: the same data and seed give the same Optuna trials and the same fitted model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churn_assets.lib.modeling.data import DataSplit
from churn_assets.lib.modeling.estimators import (
    CalibrationMethod,
    Calibrator,
    ChurnClassifier,
    make_preprocessor,
)
from churn_assets.lib.training_set import TrainingSet


def out_of_fold_scores(
    pipeline: Pipeline, split: DataSplit
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Scores of every validation row from a model that never saw it, plus per-fold AUC."""
    scores, labels, fold_auc = [], [], []
    for fit_rows, val_rows in split.folds:
        model = clone(pipeline).fit(split.x_train.iloc[fit_rows], split.y_train[fit_rows])
        s = model.predict_proba(split.x_train.iloc[val_rows])[:, 1]
        scores.append(s)
        labels.append(split.y_train[val_rows])
        fold_auc.append(float(roc_auc_score(split.y_train[val_rows], s)))
    return np.concatenate(scores), np.concatenate(labels), fold_auc


def fit_calibrated(
    pipeline: Pipeline,
    ts: TrainingSet,
    split: DataSplit,
    *,
    calibration: CalibrationMethod,
    threshold: float,
) -> tuple[ChurnClassifier, list[float]]:
    """Calibrate on out-of-fold validation scores, then refit on the whole training part.

    ``"none"`` keeps the estimator's own probabilities (XGBoost's log-loss without class
    weights), for when the validation rows are not representative of the scoring period.
    """
    oof_scores, oof_labels, fold_auc = out_of_fold_scores(pipeline, split)
    calibrator = (
        None if calibration == "none" else Calibrator(calibration).fit(oof_scores, oof_labels)
    )
    fitted = clone(pipeline).fit(split.x_train, split.y_train)
    background = np.asarray(fitted.named_steps["features"].transform(split.x_train)).mean(axis=0)
    model = ChurnClassifier(
        fitted, calibrator, ts.numeric_features, ts.categorical_features, threshold, background
    )
    return model, fold_auc


@dataclass(frozen=True)
class TuningResult:
    params: dict[str, Any]
    cv_auc: float
    n_trials: int
    n_pruned: int
    study_name: str


def _search_space(trial: optuna.Trial, pos_weight: float | None) -> dict[str, Any]:
    params = {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 50.0, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 0.1, 50.0, log=True),
        "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
        "gamma": trial.suggest_float("gamma", 1e-3, 5.0, log=True),
    }
    if pos_weight is not None:
        params["scale_pos_weight"] = trial.suggest_float(
            "scale_pos_weight", 1.0, max(pos_weight, 1.0 + 1e-6)
        )
    return params


def tune_xgboost(
    ts: TrainingSet,
    split: DataSplit,
    *,
    n_trials: int,
    timeout_seconds: float | None,
    seed: int,
    n_jobs: int,
    storage: str | None,
    study_name: str,
    weight_classes: bool = True,
    max_rounds: int = 1000,
    early_stopping_rounds: int = 30,
) -> TuningResult:
    """Optuna TPE (seeded) over the validation folds, median-pruned after each fold.

    The study is persisted and resumed (``load_if_exists``): it is topped up to ``n_trials``
    finished trials, so re-running with the same budget repeats the same best trial instead
    of drifting, and a larger budget continues the search (``timeout_seconds`` is a safety
    net: when it binds, the number of trials and so the result depend on machine speed).

    The objective is mean validation ROC-AUC, but rounds are early-stopped on validation
    log-loss: AUC plateaus early and noisily, and stopping on it left under-fitted, badly
    calibrated boosters (retail out-of-time ECE 0.105 vs 0.056 with log-loss stopping). The
    median best round count of the best trial becomes the final model's size.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = []
    for fit_rows, val_rows in split.folds:
        pre = make_preprocessor(ts.numeric_features, ts.categorical_features, linear=False)
        x_fit = pre.fit_transform(split.x_train.iloc[fit_rows])
        x_val = pre.transform(split.x_train.iloc[val_rows])
        prepared.append((x_fit, split.y_train[fit_rows], x_val, split.y_train[val_rows]))
    # Class weights distort probabilities, so they are only searched when a calibrator follows.
    pos_weight = (
        float((split.y_train == 0).sum() / max((split.y_train == 1).sum(), 1))
        if weight_classes
        else None
    )

    def objective(trial: optuna.Trial) -> float:
        params = _search_space(trial, pos_weight)
        aucs, rounds = [], []
        for step, (x_fit, y_fit, x_val, y_val) in enumerate(prepared):
            model = XGBClassifier(
                **params,
                n_estimators=max_rounds,
                early_stopping_rounds=early_stopping_rounds,
                eval_metric="logloss",
                random_state=seed,
                n_jobs=n_jobs,
                tree_method="hist",
            )
            model.fit(x_fit, y_fit, eval_set=[(x_val, y_val)], verbose=False)
            rounds.append(model.best_iteration + 1)
            aucs.append(float(roc_auc_score(y_val, model.predict_proba(x_val)[:, 1])))
            trial.report(float(np.mean(aucs)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("n_estimators", int(np.median(rounds)))
        trial.set_user_attr("fold_auc", aucs)
        return float(np.mean(aucs))

    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=min(10, max(n_trials // 2, 1))
        ),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        load_if_exists=True,
    )
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished))
    if done < n_trials:
        study.optimize(objective, n_trials=n_trials - done, timeout=timeout_seconds)
    trials = study.get_trials(deepcopy=False, states=finished)
    best = study.best_trial
    params = {**best.params, "n_estimators": int(best.user_attrs["n_estimators"])}
    return TuningResult(
        params=params,
        cv_auc=float(study.best_value),
        n_trials=len(trials),
        n_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        study_name=study_name,
    )
