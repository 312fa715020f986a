"""Run config of the training stage, editable per run in the launchpad."""

from datetime import date

import dagster as dg

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.modeling.protocol import Protocol
from churn_assets.lib.modeling.recipes import Budget


class ProtocolConfig(dg.Config):
    """The evaluation protocol, set once on the baseline candidate and inherited downstream.

    The split type follows the dataset's kind (random for a snapshot, out of time for events);
    the date knobs apply out of time, empty meaning "anchored on the newest matured month".
    Costs default to the dataset's declaration.
    """

    seed: int = 42
    train_end: str = ""
    test_start: str = ""
    test_end: str = ""
    validation_folds: int = 3
    calibration: str = "auto"
    cost_false_positive: float | None = None
    cost_false_negative: float | None = None
    n_bootstrap: int = 500

    def protocol(self, spec: DatasetSpec) -> Protocol:
        return Protocol(
            kind=spec.protocol,
            seed=self.seed,
            horizon_days=spec.ev.label_horizon_days if spec.kind == "events" else None,
            train_end=date.fromisoformat(self.train_end) if self.train_end else None,
            test_start=date.fromisoformat(self.test_start) if self.test_start else None,
            test_end=date.fromisoformat(self.test_end) if self.test_end else None,
            validation_folds=self.validation_folds,
            calibration=self.calibration,
            cost_false_positive=self.cost_false_positive
            if self.cost_false_positive is not None
            else spec.decision.cost_false_positive,
            cost_false_negative=self.cost_false_negative
            if self.cost_false_negative is not None
            else spec.decision.cost_false_negative,
            n_bootstrap=self.n_bootstrap,
        )


class BaselineConfig(ProtocolConfig):
    regularisation_c: float = 0.1

    def budget(self) -> Budget:
        return Budget(regularisation_c=self.regularisation_c)


class SearchBudget(dg.Config):
    """Optuna budget. ``n_trials`` should bind (reproducible); the timeout is a safety net."""

    n_trials: int = 20
    timeout_seconds: float = 240.0


class XGBoostConfig(SearchBudget):
    """XGBoost's search budget and model size."""

    max_rounds: int = 1000
    # Fixed thread count: part of what makes a run reproducible across machines.
    n_jobs: int = 1

    def budget(self, storage: str | None) -> Budget:
        return Budget(
            n_trials=self.n_trials,
            timeout_seconds=self.timeout_seconds,
            max_rounds=self.max_rounds,
            n_jobs=self.n_jobs,
            storage=storage,
        )


class DeepConfig(SearchBudget):
    """Tuning budget of the deep tabular candidate, under XGBoost's rules (the trial count
    binds, the timeout is a safety net). A trial costs about ten XGBoost trials (a network
    compiled and trained per fold), so the default is smaller; raise it in the launchpad.
    """

    n_trials: int = 3
    timeout_seconds: float = 300.0
    max_epochs: int = 200
    patience: int = 12

    def budget(self, storage: str | None) -> Budget:
        return Budget(
            n_trials=self.n_trials,
            timeout_seconds=self.timeout_seconds,
            max_epochs=self.max_epochs,
            patience=self.patience,
            storage=storage,
        )


class PromotionConfig(dg.Config):
    """Gate knobs: required ROC-AUC gain over the champion and the ECE sanity bound."""

    promotion_margin: float = 0.002
    max_calibration_error: float = 0.10


class ShapConfig(dg.Config):
    """Rows sampled for the global plots (the drivers table covers the whole population)."""

    max_rows_for_plots: int = 2000
    top_k: int = 3
