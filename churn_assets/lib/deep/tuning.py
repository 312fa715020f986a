"""Optuna search for the deep tabular model, under the same budget rules as XGBoost.

Same folds, seeded TPE sampler, median pruner after each fold, a trial-count budget that
binds (topped up on a persisted study) and a timeout as safety net, early stopping on the
validation fold. Self-contained on purpose: it needs only the raw training rows and folds,
not the rest of the modeling module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import roc_auc_score

from churn_assets.lib.deep.estimator import DeepTabularClassifier, make_deep_preprocessor
from churn_assets.lib.modeling import Folds, TuningResult


def search_space(trial: optuna.Trial, pos_weight: float | None) -> dict[str, Any]:
    """Capacity, regularisation and optimiser knobs of the MLP.

    The MLP space of Gorishniy et al. (2021, "Revisiting deep learning models for tabular
    data"), cut to what one CPU core searches in 20 trials: at most three layers and 512
    units, since hand-set prototypes from 1x128 to 2x128 units already validated within
    0.002 AUC of each other on Telco. Weight decay spans up to 1 because AdamW's decay is
    decoupled (multiplied by the learning rate); dropout and weight decay are the two
    regularisers; learning rate and batch size set how many noisy steps early stopping gets
    to choose from.
    """
    params: dict[str, Any] = {
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "hidden_width": trial.suggest_int("hidden_width", 32, 512, log=True),
        "embedding_dim": trial.suggest_int("embedding_dim", 2, 16, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 1.0, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [128, 256, 512]),
    }
    if pos_weight is not None:
        params["pos_weight"] = trial.suggest_float("pos_weight", 1.0, max(pos_weight, 1.0 + 1e-6))
    return params


def tune_deep(
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    folds: Folds,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    n_trials: int,
    timeout_seconds: float | None,
    seed: int,
    storage: str | None,
    study_name: str,
    weight_classes: bool = True,
    max_epochs: int = 200,
    patience: int = 12,
) -> TuningResult:
    """Optuna TPE (seeded) over ``folds`` of the raw training rows, median-pruned per fold.

    The objective is mean validation ROC-AUC; each fold's network early-stops on validation
    log-loss after ``patience`` epochs without improvement (as XGBoost's rounds do, with
    ``max_epochs`` as ceiling) and the median best epoch of the best trial becomes the
    refit's ``max_epochs`` with no internal validation split, so the final model trains on
    all of ``x_train``. The study is topped up to ``n_trials`` finished trials
    (``load_if_exists``), so re-running with the same budget repeats the same best trial.
    Each trial's compiled network is released when the trial ends (see
    ``training.release_compiled``). Returned ``params`` go straight into :func:`deep_pipeline`.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prepared = []
    for fit_rows, val_rows in folds:
        pre = make_deep_preprocessor(numeric, categorical)
        x_fit = pre.fit_transform(x_train.iloc[fit_rows])
        x_val = pre.transform(x_train.iloc[val_rows])
        prepared.append((x_fit, y_train[fit_rows], x_val, y_train[val_rows]))
    # Class weights distort probabilities, so they are only searched when a calibrator follows.
    pos_weight = (
        float((y_train == 0).sum() / max((y_train == 1).sum(), 1)) if weight_classes else None
    )

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial, pos_weight)
        aucs, epochs = [], []
        try:
            for step, (x_fit, y_fit, x_val, y_val) in enumerate(prepared):
                model = DeepTabularClassifier(
                    n_categorical=len(categorical),
                    max_epochs=max_epochs,
                    patience=patience,
                    random_state=seed,
                    **params,
                ).fit(x_fit, y_fit, eval_set=(x_val, y_val))
                epochs.append(model.best_epoch_)
                aucs.append(float(roc_auc_score(y_val, model.decision_function(x_val))))
                trial.report(float(np.mean(aucs)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        finally:
            # The first fit imported JAX; no later trial reuses this trial's compiled network.
            from churn_assets.lib.deep import training

            training.release_compiled()
        trial.set_user_attr("max_epochs", int(np.median(epochs)))
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
    params = {
        **best.params,
        "max_epochs": int(best.user_attrs["max_epochs"]),
        "validation_fraction": 0.0,
    }
    return TuningResult(
        params=params,
        cv_auc=float(study.best_value),
        n_trials=len(trials),
        n_pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
        study_name=study_name,
    )
