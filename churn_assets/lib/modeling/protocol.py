"""The evaluation protocol of a training run, and the candidates it compares.

One :class:`Protocol` is fixed per training run (on the baseline candidate) and inherited by
every other candidate, the selection and the promotion gate, so all models of a run are fitted,
validated and tested on the same rows with the same costs. Pure code, no Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl

from churn_assets.lib.evaluation import Evaluation, cost_threshold, evaluate
from churn_assets.lib.modeling.data import (
    DataSplit,
    anchored_out_of_time_dates,
    split_out_of_time,
    split_random,
)
from churn_assets.lib.modeling.estimators import CalibrationMethod, ChurnClassifier
from churn_assets.lib.training_set import TrainingSet


@dataclass(frozen=True)
class Protocol:
    """How a dataset's models are split, validated, calibrated and scored.

    ``random`` (a snapshot): stratified hold-out with CV inside the training part.
    ``out_of_time`` (events): dates are empty for "anchored on the newest matured observation
    date" (the last four matured months are the test, training ends one horizon before), so a
    retrain during a replay always has matured test months.
    """

    kind: Literal["random", "out_of_time"]
    seed: int = 42
    horizon_days: int | None = None
    train_end: date | None = None
    test_start: date | None = None
    test_end: date | None = None
    validation_folds: int = 3
    calibration: str = "auto"
    cost_false_positive: float = 1.0
    cost_false_negative: float = 4.0
    n_bootstrap: int = 500

    def split(self, ts: TrainingSet, frame: pl.DataFrame) -> DataSplit:
        if self.kind == "random":
            return split_random(ts, frame, seed=self.seed)
        assert self.horizon_days is not None, "an out-of-time protocol needs the label horizon"
        newest = frame[ts.time_column].max()
        assert isinstance(newest, date), f"{ts.time_column} must be a date column"
        anchored = anchored_out_of_time_dates(newest, self.horizon_days)
        train_end, test_start, test_end = (
            given or default
            for given, default in zip(
                (self.train_end, self.test_start, self.test_end), anchored, strict=True
            )
        )
        return split_out_of_time(
            ts,
            frame,
            train_end=train_end,
            test_start=test_start,
            test_end=test_end,
            horizon_days=self.horizon_days,
            n_val_folds=self.validation_folds,
        )

    @property
    def calibration_method(self) -> CalibrationMethod:
        """``auto``: isotonic on out-of-fold scores for a random split (folds and test come from
        one population); out of time, ``seasonal`` (season-balanced training, then each calendar
        month's newest matured churn rate as prior): the validation months carry another
        season's churn rate, and calibrators fitted on them made the test ECE worse (measured
        on retail: 0.10 uncalibrated, 0.15-0.29 isotonic or Platt on the last or spread-out
        matured months, 0.04 seasonal)."""
        if self.calibration == "auto":
            return "seasonal" if self.kind == "out_of_time" else "isotonic"
        if self.calibration not in ("isotonic", "sigmoid", "seasonal", "none"):
            raise ValueError(
                f"calibration must be auto, isotonic, sigmoid, seasonal or none: {self.calibration}"
            )
        return self.calibration  # type: ignore[return-value]

    @property
    def class_weights(self) -> bool:
        """Whether candidates may weight churners up: class weights shift probabilities, so
        only when a score calibrator maps them back."""
        return self.calibration_method in ("isotonic", "sigmoid")

    @property
    def balance_seasons(self) -> bool:
        """Whether candidates train season-balanced (see ``season_balancing_weights``)."""
        return self.calibration_method == "seasonal"

    @property
    def threshold(self) -> float:
        return cost_threshold(self.cost_false_positive, self.cost_false_negative)

    def evaluate(self, model: ChurnClassifier, split: DataSplit) -> Evaluation:
        return evaluate(
            split.y_test,
            model.predict_proba(split.x_test)[:, 1],
            cost_false_positive=self.cost_false_positive,
            cost_false_negative=self.cost_false_negative,
            n_bootstrap=self.n_bootstrap,
            seed=self.seed,
        )

    def params(self) -> dict[str, Any]:
        """Flat parameters for MLflow (dates as text)."""
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Candidate:
    """One fitted candidate of a training run, logged to MLflow (not registered yet)."""

    name: str
    run_id: str
    model_uri: str
    training_set_version: str
    protocol: Protocol
    metrics: dict[str, float]
    validation_auc: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def test_auc(self) -> float:
        return self.metrics["roc_auc"]


@dataclass(frozen=True)
class RegisteredModel:
    """The candidate a training run registered, with the comparison that chose it."""

    dataset: str
    name: str
    version: str
    candidate: Candidate
    comparison: list[dict[str, Any]]


def choose(candidates: list[Candidate]) -> Candidate:
    """The candidate with the best validation ROC-AUC; test figures never enter the choice.
    Ties go to the first candidate (the simplest: the baseline comes first)."""
    return candidates[best_by_validation([c.validation_auc for c in candidates])]


def best_by_validation(validation_aucs: Sequence[float]) -> int:
    """Index of the best validation ROC-AUC, ties to the first (the rule of :func:`choose`)."""
    return max(range(len(validation_aucs)), key=lambda i: (validation_aucs[i], -i))


def comparison_rows(candidates: list[Candidate], chosen: Candidate) -> list[dict[str, Any]]:
    return [
        {
            "candidate": c.name,
            "validation_roc_auc": round(c.validation_auc, 4),
            "test_roc_auc": round(c.test_auc, 4),
            "test_roc_auc_ci": f"[{c.metrics['roc_auc_ci_low']:.3f}, {c.metrics['roc_auc_ci_high']:.3f}]",
            "test_ece": round(c.metrics["ece"], 4),
            "chosen": c.name == chosen.name,
        }
        for c in candidates
    ]


def validation_auc(fold_auc: list[float]) -> float:
    return float(np.mean(fold_auc))
