"""Out-of-time check of the events value model: predicted vs realized revenue after T.

The model is fitted on purchases before T and predicts each customer's purchase revenue in
``[T, T + horizon)``; the check compares that with what the same customers actually spent in
that window. When the data ends before T + horizon, both sides are cut to the covered window
``[T, data end)`` and the result says so (``full_horizon = False``, ``covered_days``): the
prediction is then made for exactly the covered number of days, never scaled afterwards.

Population: every customer with a purchase before T (the population that gets a value at T).
Customers whose first purchase is on or after T are outside it by construction.

A naive benchmark sits next to the model's figures: "the next period looks like the last
one", i.e. purchase revenue in ``[T - 365d, T)`` scaled to the covered days. A value model that
does not beat it should not be trusted with budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import spearmanr

from churn_assets.lib.business.value import (
    DEFAULT_HORIZON_DAYS,
    data_end_exclusive,
    events_customer_value,
    realized_revenue,
)

N_DECILES = 10
# The naive benchmark looks back one year.
DAYS_LOOKBACK = 365


@dataclass(frozen=True)
class ValueCheck:
    """Figures of one out-of-time check; ``calibration`` is one row per predicted decile."""

    observation_date: date
    horizon_days: int
    covered_days: int
    full_horizon: bool
    n_customers: int
    mae: float
    rmse: float
    spearman: float
    total_predicted: float
    total_realized: float
    naive_mae: float
    naive_rmse: float
    naive_spearman: float
    calibration: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def window_label(self) -> str:
        end = self.observation_date + timedelta(days=self.covered_days)
        if self.full_horizon:
            return f"full {self.horizon_days}-day horizon [{self.observation_date}, {end})"
        return (
            f"PARTIAL: the data covers {self.covered_days} of {self.horizon_days} days "
            f"[{self.observation_date}, {end}); prediction and realized revenue are both for "
            "the covered days only"
        )

    @property
    def total_ratio(self) -> float:
        """total predicted / total realized (1 = unbiased in aggregate)."""
        return self.total_predicted / self.total_realized if self.total_realized else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "observation_date": self.observation_date.isoformat(),
            "window": self.window_label,
            "horizon_days": self.horizon_days,
            "covered_days": self.covered_days,
            "full_horizon": self.full_horizon,
            "n_customers": self.n_customers,
            "mae": self.mae,
            "rmse": self.rmse,
            "spearman": self.spearman,
            "total_predicted": self.total_predicted,
            "total_realized": self.total_realized,
            "total_ratio": self.total_ratio,
            "naive_mae": self.naive_mae,
            "naive_rmse": self.naive_rmse,
            "naive_spearman": self.naive_spearman,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], calibration: pl.DataFrame | None = None
    ) -> ValueCheck:
        """Back from :meth:`as_dict` or a stored row (derived figures are recomputed)."""
        names = {f.name for f in fields(cls)} - {"observation_date", "calibration"}
        day = data["observation_date"]
        return cls(
            **{k: data[k] for k in names},
            observation_date=day if isinstance(day, date) else date.fromisoformat(day),
            calibration=pl.DataFrame() if calibration is None else calibration,
        )


def predicted_deciles(predicted: np.ndarray) -> np.ndarray:
    """1..10 by rank of the prediction (10 = highest), equal-sized, ties broken by row order."""
    n = len(predicted)
    order = np.argsort(predicted, kind="mergesort")
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(n)
    return ranks * N_DECILES // max(n, 1) + 1


def _errors(predicted: np.ndarray, realized: np.ndarray) -> tuple[float, float, float]:
    diff = predicted - realized
    rho = spearmanr(predicted, realized).statistic if len(predicted) > 1 else float("nan")
    return float(np.abs(diff).mean()), float(np.sqrt((diff**2).mean())), float(rho)


def value_out_of_time_check(
    events: pl.DataFrame,
    observation_date: date,
    *,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    data_end: date | None = None,
) -> ValueCheck:
    """Fit at T on history before T, predict, and compare with realized revenue after T.

    ``data_end`` (exclusive) defaults to the day after the last event in ``events``.
    """
    end = data_end or data_end_exclusive(events)
    covered = min(horizon_days, (end - observation_date).days)
    if covered <= 0:
        raise ValueError(f"the data ends on {end}: nothing after {observation_date} to check")
    frame, _ = events_customer_value(events, observation_date, horizon_days=covered)
    realized = realized_revenue(
        events, observation_date, observation_date + timedelta(days=covered)
    )
    last_year = realized_revenue(
        events, observation_date - timedelta(days=DAYS_LOOKBACK), observation_date
    ).rename({"realized_revenue": "last_year_revenue"})
    joined = (
        frame.select("customer_id", "value")
        .join(realized, on="customer_id", how="left")
        .join(last_year, on="customer_id", how="left")
        .fill_null(0.0)
        .sort("customer_id")
    )
    predicted = joined["value"].to_numpy()
    actual = joined["realized_revenue"].to_numpy()
    naive = joined["last_year_revenue"].to_numpy() * covered / DAYS_LOOKBACK
    mae, rmse, rho = _errors(predicted, actual)
    naive_mae, naive_rmse, naive_rho = _errors(naive, actual)
    calibration = (
        pl.DataFrame(
            {"decile": predicted_deciles(predicted), "predicted": predicted, "realized": actual}
        )
        .group_by("decile")
        .agg(
            customers=pl.len(),
            mean_predicted=pl.col("predicted").mean(),
            mean_realized=pl.col("realized").mean(),
            total_predicted=pl.col("predicted").sum(),
            total_realized=pl.col("realized").sum(),
        )
        .sort("decile")
    )
    return ValueCheck(
        observation_date=observation_date,
        horizon_days=horizon_days,
        covered_days=covered,
        full_horizon=covered == horizon_days,
        n_customers=joined.height,
        mae=mae,
        rmse=rmse,
        spearman=rho,
        total_predicted=float(predicted.sum()),
        total_realized=float(actual.sum()),
        naive_mae=naive_mae,
        naive_rmse=naive_rmse,
        naive_spearman=naive_rho,
        calibration=calibration,
    )
