"""Customer value: what a customer is expected to bring in over the next year if nothing is done.

Two estimators, one per dataset kind; both return one row per customer with a ``value`` column
in the dataset's currency (revenue, before margin: the margin rate is a playbook assumption and
is applied by the playbook and campaign code).

**Events datasets** (:func:`events_customer_value`): expected purchase revenue in
``[T, T + horizon_days)`` from BG/NBD × Gamma-Gamma (see :mod:`.clv`), fitted on purchases with
``event_ts < T`` only, so the value at T never sees the future. Summary convention (the one of
the papers and of ``lifetimes``): purchases are counted per *purchase day* (several orders on
one calendar day are one transaction), frequency x = purchase days - 1 (repeat days), recency
t_x = days from the first to the last purchase day, age T = days from the first purchase day to
T, monetary m̄ = mean revenue of the repeat purchase days (the first day is excluded, as it is
often atypical). Revenue is gross purchase revenue: returns and cancellations are churn signals,
not part of the value model. A customer's "birth" is their first purchase *in the data*, so
customers who bought before the data starts look younger than they are.

Value is the *unconditional* expectation: it already includes the customer's chance of lapsing
on their own. Revenue at risk (p × value) is therefore a conservative figure.

**Snapshot datasets** (:func:`snapshot_customer_value`): monthly charge × expected remaining
tenure within the horizon. The remaining tenure comes from a constant monthly hazard per group
(e.g. contract type) fitted on the snapshot itself: h = churners / Σ tenure months, the maximum-
likelihood rate of an exponential lifetime when every customer's tenure is exposure and the
churn flag the event. Expected months paid within H months: (1 - e^{-hH}) / h (→ H as h → 0);
uncapped (``horizon_months=None``) it is 1/h. Caveat, stated in the docstring because the data
cannot fix it: a snapshot only holds customers who were still there recently (left truncation),
which makes h too low for groups with a long history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from churn_assets.lib.business.clv import (
    BGNBDParams,
    GammaGammaParams,
    bgnbd_expected_purchases,
    bgnbd_p_alive,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
)

PURCHASE = "purchase"
PURCHASES_SQL = """
SELECT customer_id, event_ts, amount, event_type
FROM {table}
WHERE event_type = 'purchase'
    AND customer_id IS NOT NULL
    AND exclude_reason IS NULL
    AND coalesce(quantity, 1) <> 0
"""
"""The purchases of a raw events table (``<ds>_raw.events`` shape) the value model reads: the
rows staging keeps (a customer, not excluded by the declaration, a non-zero quantity)."""
DEFAULT_HORIZON_DAYS = 365
DAYS_PER_YEAR = 365.0
# Discounting integrates over the horizon in steps of about a month.
_DISCOUNT_STEP_DAYS = 30.0


def _as_datetime(day: date) -> datetime:
    return day if isinstance(day, datetime) else datetime(day.year, day.month, day.day)


def purchase_days(events: pl.DataFrame, start: date | None, end: date) -> pl.DataFrame:
    """Purchase revenue per (customer_id, purchase day) for purchases in ``[start, end)``."""
    frame = events.filter(
        (pl.col("event_type") == PURCHASE) & (pl.col("event_ts") < _as_datetime(end))
    )
    if start is not None:
        frame = frame.filter(pl.col("event_ts") >= _as_datetime(start))
    return (
        frame.with_columns(pl.col("customer_id").cast(pl.String), day=pl.col("event_ts").dt.date())
        .group_by("customer_id", "day")
        .agg(revenue=pl.col("amount").sum())
    )


def purchase_summary(events: pl.DataFrame, observation_date: date) -> pl.DataFrame:
    """Per customer with a purchase before T, the BG/NBD / Gamma-Gamma inputs at T.

    ``events`` needs customer_id, event_ts, amount and event_type (only ``purchase`` rows are
    used). Columns: customer_id, frequency (repeat purchase days), recency_days (t_x),
    age_days (T), monetary_value (mean revenue of the repeat purchase days, 0 without any),
    purchase_days, revenue (all purchase revenue before T). Sorted by customer_id.
    """
    t = observation_date if not isinstance(observation_date, datetime) else observation_date.date()
    days = purchase_days(events, None, t)
    return (
        days.sort("customer_id", "day")
        .group_by("customer_id", maintain_order=True)
        .agg(
            first=pl.col("day").first(),
            last=pl.col("day").last(),
            purchase_days=pl.len(),
            revenue=pl.col("revenue").sum(),
            first_revenue=pl.col("revenue").first(),
        )
        .with_columns(frequency=(pl.col("purchase_days") - 1).cast(pl.Int64))
        .select(
            "customer_id",
            "frequency",
            recency_days=(pl.col("last") - pl.col("first")).dt.total_days().cast(pl.Float64),
            age_days=(pl.lit(t) - pl.col("first")).dt.total_days().cast(pl.Float64),
            monetary_value=pl.when(pl.col("frequency") > 0)
            .then((pl.col("revenue") - pl.col("first_revenue")) / pl.col("frequency"))
            .otherwise(0.0),
            purchase_days="purchase_days",
            revenue="revenue",
        )
        .sort("customer_id")
    )


@dataclass(frozen=True)
class EventsValueModel:
    """BG/NBD and Gamma-Gamma fitted on the history before one observation date."""

    observation_date: date
    bgnbd: BGNBDParams
    gamma_gamma: GammaGammaParams

    def as_dict(self) -> dict[str, Any]:
        """Flat figures for asset metadata / MLflow params."""
        out: dict[str, Any] = {"observation_date": self.observation_date.isoformat()}
        out |= {f"bgnbd_{k}": _plain(v) for k, v in self.bgnbd.as_dict().items()}
        out |= {f"gamma_gamma_{k}": _plain(v) for k, v in self.gamma_gamma.as_dict().items()}
        out["population_mean_spend"] = self.gamma_gamma.population_mean_spend
        return out


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def fit_events_value_model(summary: pl.DataFrame, observation_date: date) -> EventsValueModel:
    """Fit both models on a :func:`purchase_summary` (which only holds history before T)."""
    x = summary["frequency"].to_numpy().astype(float)
    return EventsValueModel(
        observation_date=observation_date,
        bgnbd=fit_bgnbd(x, summary["recency_days"].to_numpy(), summary["age_days"].to_numpy()),
        gamma_gamma=fit_gamma_gamma(x, summary["monetary_value"].to_numpy()),
    )


def discounted_expected_purchases(
    params: BGNBDParams,
    horizon_days: float,
    x: np.ndarray,
    t_x: np.ndarray,
    age: np.ndarray,
    annual_discount_rate: float = 0.0,
) -> np.ndarray:
    """E[purchases in the next ``horizon_days``], each discounted by (1 + d)^-(s / 365).

    Without discounting this is BG/NBD eq. 10 at t = horizon. With a rate, the horizon is cut
    into ~monthly steps; the purchases expected in each step are discounted at its midpoint.
    """
    if annual_discount_rate == 0.0:
        return bgnbd_expected_purchases(params, horizon_days, x, t_x, age)
    if annual_discount_rate <= -1:
        raise ValueError("annual_discount_rate must be > -1")
    steps = max(1, math.ceil(horizon_days / _DISCOUNT_STEP_DAYS))
    edges = np.linspace(0.0, horizon_days, steps + 1)
    cumulative = [np.zeros(len(np.atleast_1d(x)))] + [
        bgnbd_expected_purchases(params, float(e), x, t_x, age) for e in edges[1:]
    ]
    total = np.zeros_like(cumulative[0])
    for k in range(steps):
        midpoint = (edges[k] + edges[k + 1]) / 2
        factor = (1 + annual_discount_rate) ** (-midpoint / DAYS_PER_YEAR)
        total += factor * (cumulative[k + 1] - cumulative[k])
    return total


def predict_events_value(
    model: EventsValueModel,
    summary: pl.DataFrame,
    *,
    horizon_days: float = DEFAULT_HORIZON_DAYS,
    annual_discount_rate: float = 0.0,
) -> pl.DataFrame:
    """Per customer: p_alive, expected_purchases, expected_spend_per_purchase and ``value``
    (expected purchase revenue in the next ``horizon_days``, optionally discounted)."""
    x = summary["frequency"].to_numpy().astype(float)
    t_x = summary["recency_days"].to_numpy()
    age = summary["age_days"].to_numpy()
    purchases = discounted_expected_purchases(
        model.bgnbd, horizon_days, x, t_x, age, annual_discount_rate
    )
    spend = gamma_gamma_expected_spend(model.gamma_gamma, x, summary["monetary_value"].to_numpy())
    return pl.DataFrame(
        {
            "customer_id": summary["customer_id"],
            "p_alive": bgnbd_p_alive(model.bgnbd, x, t_x, age),
            "expected_purchases": purchases,
            "expected_spend_per_purchase": spend,
            "value": purchases * spend,
        }
    )


def events_customer_value(
    events: pl.DataFrame,
    observation_date: date,
    *,
    horizon_days: float = DEFAULT_HORIZON_DAYS,
    annual_discount_rate: float = 0.0,
) -> tuple[pl.DataFrame, EventsValueModel]:
    """Expected revenue in ``[T, T + horizon_days)`` of every customer who bought before T.

    What an events dataset's value asset calls once per observation date. Returns the
    per-customer frame (summary columns + predictions, ``value`` the figure to use) and the
    fitted model (its ``as_dict()`` is the asset's metadata).
    """
    summary = purchase_summary(events, observation_date)
    if summary.height == 0:
        raise ValueError(f"no purchases before {observation_date}: nothing to value")
    model = fit_events_value_model(summary, observation_date)
    predicted = predict_events_value(
        model, summary, horizon_days=horizon_days, annual_discount_rate=annual_discount_rate
    )
    frame = summary.join(predicted, on="customer_id", how="left").with_columns(
        observation_date=pl.lit(observation_date, dtype=pl.Date),
        value_horizon_days=pl.lit(float(horizon_days)),
    )
    return frame, model


def constant_hazards(
    frame: pl.DataFrame, *, group_column: str, tenure_column: str, label_column: str
) -> pl.DataFrame:
    """Monthly churn hazard per group: churners / Σ tenure months (exponential MLE).

    Columns: the group, customers, churners, exposure_months, monthly_hazard.
    """
    return (
        frame.group_by(group_column)
        .agg(
            customers=pl.len(),
            churners=pl.col(label_column).cast(pl.Float64).sum(),
            exposure_months=pl.col(tenure_column).cast(pl.Float64).sum(),
        )
        .with_columns(
            monthly_hazard=pl.when(pl.col("exposure_months") > 0)
            .then(pl.col("churners") / pl.col("exposure_months"))
            .otherwise(None)
        )
        .sort(group_column)
    )


def expected_remaining_months(hazard: np.ndarray, horizon_months: float | None) -> np.ndarray:
    """E[min(L, H)] for L ~ Exponential(h): (1 - e^{-hH}) / h, H when h = 0; 1/h uncapped."""
    h = np.asarray(hazard, dtype=float)
    if horizon_months is None:
        if np.any(h <= 0) or np.any(~np.isfinite(h)):
            raise ValueError("a group without churners has an infinite uncapped remaining tenure")
        return 1.0 / h
    with np.errstate(divide="ignore", invalid="ignore"):
        capped = -np.expm1(-h * horizon_months) / h
    return np.where(h > 0, capped, float(horizon_months))


def snapshot_customer_value(
    frame: pl.DataFrame,
    *,
    charge_column: str = "monthly_charges",
    tenure_column: str = "tenure",
    group_column: str = "contract",
    label_column: str = "churned",
    horizon_months: float | None = 12.0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per customer: monthly charge × expected remaining tenure (months) within the horizon.

    The default 12-month horizon makes the figure comparable with an events dataset's
    12-month revenue. Returns (per-customer frame with customer_id, group, monthly_hazard,
    expected_remaining_months, value; the hazard table by group).
    """
    hazards = constant_hazards(
        frame, group_column=group_column, tenure_column=tenure_column, label_column=label_column
    )
    if hazards["monthly_hazard"].null_count():
        empty = hazards.filter(pl.col("monthly_hazard").is_null())[group_column].to_list()
        raise ValueError(f"groups {empty} have no tenure exposure: cannot fit a hazard")
    joined = frame.select(pl.col("customer_id").cast(pl.String), group_column, charge_column).join(
        hazards.select(group_column, "monthly_hazard"), on=group_column, how="left"
    )
    months = expected_remaining_months(joined["monthly_hazard"].to_numpy(), horizon_months)
    out = joined.with_columns(
        expected_remaining_months=pl.Series(months),
        value=pl.col(charge_column).cast(pl.Float64) * pl.Series(months),
        value_horizon_months=pl.lit(horizon_months, dtype=pl.Float64),
    )
    return out, hazards


def realized_revenue(events: pl.DataFrame, start: date, end: date) -> pl.DataFrame:
    """Purchase revenue per customer in ``[start, end)`` (customer_id, realized_revenue)."""
    return (
        purchase_days(events, start, end)
        .group_by("customer_id")
        .agg(realized_revenue=pl.col("revenue").sum())
    )


def data_end_exclusive(events: pl.DataFrame) -> date:
    """The day after the last event's day: the end of the period the data covers."""
    last = events["event_ts"].max()
    if last is None:
        raise ValueError("no events")
    assert isinstance(last, datetime)
    return last.date() + timedelta(days=1)


def events_value_method(
    model: EventsValueModel,
    horizon_days: float,
    annual_discount_rate: float = 0.0,
    currency: str = "",
) -> str:
    """How an events dataset's value was computed, with its fitted figures, for the report."""
    bg, gg = model.bgnbd, model.gamma_gamma
    discount = f", discounted at {annual_discount_rate:.0%} a year" if annual_discount_rate else ""
    money = f"{currency} " if currency else ""
    return (
        f"Expected purchase revenue over the next {horizon_days:.0f} days{discount}, before "
        f"margin: BG/NBD purchase model × Gamma-Gamma spend model, fitted by maximum likelihood "
        f"on {bg.n_customers:,} customers' purchases before {model.observation_date} (purchases "
        f"counted per purchase day). Fitted: while active, customers buy on average once every "
        f"{bg.alpha / bg.r:,.0f} days; after each repeat purchase a customer leaves for good with "
        f"probability {bg.a / (bg.a + bg.b):.1%} on average; the population's mean spend per "
        f"purchase day is {money}{gg.population_mean_spend:,.0f}, shrunk towards each customer's "
        "own average the more history they have."
    )


def snapshot_value_method(
    hazards: pl.DataFrame, group_column: str, horizon_months: float | None
) -> str:
    """How a snapshot dataset's value was computed, with its fitted hazards, for the report."""
    parts = ", ".join(
        f"{row[group_column]} {row['monthly_hazard']:.2%}" for row in hazards.iter_rows(named=True)
    )
    horizon = f"within {horizon_months:.0f} months" if horizon_months else "(uncapped)"
    return (
        f"Monthly charge × expected remaining tenure {horizon}, before margin, from a constant "
        f"monthly churn hazard per {group_column} fitted on the snapshot (churners / months of "
        f"tenure): {parts}."
    )
