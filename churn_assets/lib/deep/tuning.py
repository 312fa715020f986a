"""Optuna search for the deep tabular model, under the same budget rules as XGBoost.

Same folds, the same study runner (``modeling.optimize``: seeded TPE sampler, median pruner
after each fold, a trial-count budget that binds on a persisted study, a timeout as safety
net) and the same row weights, with early stopping on the validation fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from sklearn.metrics import roc_auc_score

from churn_assets.lib.deep.estimator import DeepTabularClassifier, make_deep_preprocessor
from churn_assets.lib.modeling import DataSplit, TuningResult
from churn_assets.lib.modeling.fitting import class_weight_ceiling, optimize, prepare_folds


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
    split: DataSplit,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    n_trials: int,
    timeout_seconds: float | None,
    seed: int,
    storage: str | None,
    study_name: str,
    weight_classes: bool = True,
    balance_seasons: bool = False,
    max_epochs: int = 200,
    patience: int = 12,
) -> TuningResult:
    """Optuna search (``modeling.optimize``) over the split's validation folds.

    The objective is mean validation ROC-AUC; each fold's network early-stops on validation
    log-loss after ``patience`` epochs without improvement (as XGBoost's rounds do, with
    ``max_epochs`` as ceiling) and the median best epoch of the best trial becomes the
    refit's ``max_epochs`` with no internal validation split, so the final model trains on
    all of the training part. Class weights are searched only when a calibrator follows
    (``weight_classes``); ``balance_seasons`` weighs the folds as the final fit is weighed.
    Each trial's compiled network is released when the trial ends (see
    ``training.release_compiled``). Returned ``params`` go straight into :func:`deep_pipeline`.
    """
    prepared = prepare_folds(
        split,
        lambda: make_deep_preprocessor(numeric, categorical),
        balance_seasons=balance_seasons,
    )
    pos_weight = class_weight_ceiling(split.y_train) if weight_classes else None

    def objective(trial: optuna.Trial) -> float:
        params = search_space(trial, pos_weight)
        aucs, epochs = [], []
        try:
            for step, fold in enumerate(prepared):
                model = DeepTabularClassifier(
                    n_categorical=len(categorical),
                    max_epochs=max_epochs,
                    patience=patience,
                    random_state=seed,
                    **params,
                ).fit(
                    fold.x_fit,
                    fold.y_fit,
                    sample_weight=fold.w_fit,
                    eval_set=(fold.x_val, fold.y_val),
                    eval_sample_weight=fold.w_val,
                )
                epochs.append(model.best_epoch_)
                aucs.append(float(roc_auc_score(fold.y_val, model.decision_function(fold.x_val))))
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

    return optimize(
        objective,
        n_trials=n_trials,
        timeout_seconds=timeout_seconds,
        seed=seed,
        storage=storage,
        study_name=study_name,
        refit_params=lambda best: {
            **best.params,
            "max_epochs": int(best.user_attrs["max_epochs"]),
            "validation_fraction": 0.0,
        },
    )
