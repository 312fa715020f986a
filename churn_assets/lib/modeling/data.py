"""Model inputs and evaluation protocols: raw feature rows, and the splits that keep the test
part unseen.

* ``random``: stratified 80/20 split (seed), test never seen by tuning or calibration; tuning
  and calibration use stratified 5-fold CV inside the 80 %.
* ``out_of_time``: train on observation dates ``<= train_end``, test on
  ``test_start .. test_end``; the gap must cover the label horizon so no training label
  overlaps the test period. Tuning validates on the last training months, each against a
  model trained only on dates whose labels had matured by then (time-ordered folds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.model_selection import StratifiedKFold, train_test_split

from churn_assets.lib.months import shift_months
from churn_assets.lib.training_set import TrainingSet

MISSING_CATEGORY = "__missing__"
Folds = list[tuple[np.ndarray, np.ndarray]]


def feature_frame(
    frame: pl.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...]
) -> pd.DataFrame:
    """Raw feature rows in the exact dtypes the logged model's signature expects.

    Numerics become float64 (nulls → NaN) and categoricals strings (nulls → a sentinel), so
    training, the MLflow input example and later scoring all feed identical column types.
    """
    out = frame.select(
        [pl.col(c).cast(pl.Float64) for c in numeric]
        + [pl.col(c).cast(pl.String).fill_null(MISSING_CATEGORY) for c in categorical]
    ).to_pandas()
    for column in categorical:
        out[column] = out[column].astype(object)
    return out


@dataclass
class DataSplit:
    """Train/test partition plus the validation folds used inside the training part."""

    protocol: str
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_test: pd.DataFrame
    y_test: np.ndarray
    folds: Folds
    test_index: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)
    train_dates: np.ndarray | None = None
    """Observation date of every training row (``datetime64[D]``), for fits that weigh or shift
    by season; None where no fit needs them."""


def _labels(frame: pl.DataFrame, ts: TrainingSet) -> np.ndarray:
    return frame[ts.label].cast(pl.Int64).to_numpy()


def split_random(
    ts: TrainingSet,
    frame: pl.DataFrame,
    *,
    seed: int,
    test_size: float = 0.2,
    n_folds: int = 5,
) -> DataSplit:
    """Stratified hold-out for cross-sectional data (Telco)."""
    y = _labels(frame, ts)
    x = feature_frame(frame, ts.numeric_features, ts.categorical_features)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed
    )
    idx_train, idx_test = np.sort(idx_train), np.sort(idx_test)
    y_train = y[idx_train]
    folds = list(
        StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(idx_train, y_train)
    )
    return DataSplit(
        protocol="random",
        x_train=x.iloc[idx_train].reset_index(drop=True),
        y_train=y_train,
        x_test=x.iloc[idx_test].reset_index(drop=True),
        y_test=y[idx_test],
        folds=folds,
        test_index=idx_test,
        description={
            "protocol": "stratified random hold-out",
            "seed": seed,
            "test_size": test_size,
            "cv_folds": n_folds,
            "train_rows": len(idx_train),
            "test_rows": len(idx_test),
            "train_positive_rate": round(float(y_train.mean()), 4),
            "test_positive_rate": round(float(y[idx_test].mean()), 4),
        },
    )


def check_time_gap(train_dates: list[date], test_dates: list[date], horizon_days: int) -> None:
    """Refuse a split whose training labels could peek into the test period."""
    if not train_dates or not test_dates:
        raise ValueError("out-of-time split needs both training and test observation dates")
    if max(train_dates) + timedelta(days=horizon_days) > min(test_dates):
        raise ValueError(
            f"label leakage: last training date {max(train_dates)} + {horizon_days} days "
            f"is after the first test date {min(test_dates)}"
        )


def anchored_out_of_time_dates(newest_matured: date, horizon_days: int) -> tuple[date, date, date]:
    """(train_end, test_start, test_end): the last four matured months are the test period,
    and training ends at the newest month whose label horizon closes before the test starts."""
    test_end = shift_months(newest_matured, 0)
    test_start = shift_months(test_end, -3)
    return matured_train_end(test_start, horizon_days, gap_months=3), test_start, test_end


def matured_train_end(test_start: date, horizon_days: int, *, gap_months: int = 1) -> date:
    """The newest month start, at least ``gap_months`` before ``test_start``, whose label
    horizon has closed by ``test_start``: the last training date of a model tested from
    ``test_start`` on (its labels were all known when that month began)."""
    train_end = shift_months(test_start, -gap_months)
    while train_end + timedelta(days=horizon_days) > test_start:
        train_end = shift_months(train_end, -1)
    return train_end


def out_of_time_blocker(matured_dates: Sequence[date], horizon_days: int) -> str | None:
    """Why the default out-of-time split cannot be formed from these matured dates, else None.

    A validation fold trains only on dates at least one horizon before it, so the training dates
    must span more than one horizon. Early in a replay they do not; the retraining sensor asks
    this first instead of launching a run that is bound to fail.
    """
    if not matured_dates:
        return "no observation date has a matured label yet"
    train_end, _, _ = anchored_out_of_time_dates(max(matured_dates), horizon_days)
    train = sorted(d for d in matured_dates if d <= train_end)
    if not train or train[-1] - timedelta(days=horizon_days) < train[0]:
        span = f"{train[0]} .. {train[-1]}" if train else "none"
        return (
            f"not enough matured history for an out-of-time split: training dates {span} "
            f"(newest matured {max(matured_dates)}) do not span the {horizon_days}-day horizon "
            "a time-ordered validation fold needs"
        )
    return None


def split_out_of_time(
    ts: TrainingSet,
    frame: pl.DataFrame,
    *,
    train_end: date,
    test_start: date,
    test_end: date,
    horizon_days: int,
    n_val_folds: int = 3,
) -> DataSplit:
    """Out-of-time hold-out for panel data (Retail) with time-ordered validation folds.

    Each validation fold is one of the last ``n_val_folds`` training dates; its model trains
    only on dates at least ``horizon_days`` earlier, exactly like production where the labels
    of the most recent months are not known yet.
    """
    frame = frame.sort([ts.time_column, ts.entity])
    dates = frame[ts.time_column].cast(pl.Date)
    train_mask = (dates <= train_end).to_numpy()
    test_mask = ((dates >= test_start) & (dates <= test_end)).to_numpy()
    train_dates = sorted(set(dates.filter(pl.Series(train_mask)).to_list()))
    test_dates = sorted(set(dates.filter(pl.Series(test_mask)).to_list()))
    check_time_gap(train_dates, test_dates, horizon_days)

    y = _labels(frame, ts)
    x = feature_frame(frame, ts.numeric_features, ts.categorical_features)
    idx_train, idx_test = np.flatnonzero(train_mask), np.flatnonzero(test_mask)
    train_dates_arr = np.array(dates.to_list(), dtype="datetime64[D]")[idx_train]
    folds: Folds = []
    for val_date in train_dates[-n_val_folds:]:
        cutoff = np.datetime64(val_date - timedelta(days=horizon_days), "D")
        fit_rows = np.flatnonzero(train_dates_arr <= cutoff)
        val_rows = np.flatnonzero(train_dates_arr == np.datetime64(val_date, "D"))
        if len(fit_rows) and len(np.unique(y[idx_train][fit_rows])) == 2:
            folds.append((fit_rows, val_rows))
    if not folds:
        raise ValueError(
            "no time-ordered validation fold fits inside the training dates "
            f"{train_dates[0]} .. {train_dates[-1]}: each fold trains only on dates at least "
            f"{horizon_days} days before it"
        )
    return DataSplit(
        protocol="out_of_time",
        x_train=x.iloc[idx_train].reset_index(drop=True),
        y_train=y[idx_train],
        x_test=x.iloc[idx_test].reset_index(drop=True),
        y_test=y[idx_test],
        folds=folds,
        test_index=idx_test,
        train_dates=train_dates_arr,
        description={
            "protocol": "out of time",
            "train_dates": f"{train_dates[0]} .. {train_dates[-1]} ({len(train_dates)})",
            "test_dates": f"{test_dates[0]} .. {test_dates[-1]} ({len(test_dates)})",
            "label_horizon_days": horizon_days,
            "validation_folds": len(folds),
            "train_rows": len(idx_train),
            "test_rows": len(idx_test),
            "train_positive_rate": round(float(y[idx_train].mean()), 4),
            "test_positive_rate": round(float(y[idx_test].mean()), 4),
        },
    )
