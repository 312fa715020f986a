"""Backtest of campaign targeting on months whose labels have matured.

Question answered: had the plan built at T contacted its customers, how many of the customers
who then actually churned, and how much of the revenue actually lost, would it have reached —
compared with contacting the same number of customers at random?

* Targeted: every customer the plan *selected* at T (treatment and holdout alike: the holdout
  exists to measure, the backtest asks whom the ranking reaches), restricted to customers with
  a mature label.
* Revenue lost in [T, T + horizon): for a churner (no purchase in the horizon), the revenue they
  brought in the same length of time just before T, ``trailing_revenue`` (for an events
  dataset: purchase revenue in [T - 90d, T), the run rate that stopped); 0 for a customer who
  stayed. A snapshot dataset passes the monthly charge × horizon months.
* Random targeting of the same size k out of N (C churners, R revenue lost): expected churners
  reached k·C/N with the hypergeometric standard deviation, expected revenue k·R/N, and the
  5th-95th percentiles of a seeded simulation of random draws.
* ROI range: the playbook's low / mid / high uplift of each targeted customer's action applied
  to the revenue lost of the churners reached, times the margin, against the expected contact
  and offer cost of the same scenario: (saved margin - cost) / cost. Only revenue lost within
  the horizon counts (not the customer's remaining lifetime value), so the ROI is a lower bound:
  a campaign whose backtest ROI is negative may still pay off over the value horizon.

Nothing here measures uplift: the data are observational (nobody was contacted), so the ROI is
the playbook's assumption applied to real churners, and the output text says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from churn_assets.lib.business.playbook import NO_ACTION, SCENARIOS, Playbook

NO_MEASURED_UPLIFT = (
    "No uplift is measured here: these months are observational (nobody was contacted), so the "
    "backtest only shows whom the targeting would have reached. The ROI range applies the "
    "playbook's assumed low/mid/high uplift to the churners reached; only a campaign's "
    "randomized holdout can measure the real uplift."
)


@dataclass(frozen=True)
class BacktestResult:
    observation_date: date
    horizon_days: int
    population: int
    churners: int
    revenue_lost: float
    targeted: int
    churners_reached: int
    revenue_lost_reached: float
    random_churners_expected: float
    random_churners_sd: float
    random_churners_p05: float
    random_churners_p95: float
    random_revenue_expected: float
    random_revenue_p05: float
    random_revenue_p95: float
    cost: dict[str, float]
    saved_margin: dict[str, float]
    roi: dict[str, float]
    note: str = NO_MEASURED_UPLIFT

    @property
    def churner_lift(self) -> float:
        """Churners reached / churners random targeting reaches on average."""
        expected = self.random_churners_expected
        return self.churners_reached / expected if expected else float("nan")

    @property
    def revenue_lift(self) -> float:
        expected = self.random_revenue_expected
        return self.revenue_lost_reached / expected if expected else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "observation_date": self.observation_date.isoformat(),
            "horizon_days": self.horizon_days,
            "population": self.population,
            "churners": self.churners,
            "revenue_lost": self.revenue_lost,
            "targeted": self.targeted,
            "churners_reached": self.churners_reached,
            "revenue_lost_reached": self.revenue_lost_reached,
            "random_churners_expected": self.random_churners_expected,
            "random_churners_sd": self.random_churners_sd,
            "random_churners_p05": self.random_churners_p05,
            "random_churners_p95": self.random_churners_p95,
            "random_revenue_expected": self.random_revenue_expected,
            "random_revenue_p05": self.random_revenue_p05,
            "random_revenue_p95": self.random_revenue_p95,
            "churner_lift": self.churner_lift,
            "revenue_lift": self.revenue_lift,
        }
        for s in SCENARIOS:
            out[f"cost_{s}"] = self.cost[s]
            out[f"saved_margin_{s}"] = self.saved_margin[s]
            out[f"roi_{s}"] = self.roi[s]
        out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BacktestResult:
        """Back from :meth:`as_dict` or a stored table row (observation_date a date or text;
        derived figures such as the lifts are recomputed, never read)."""
        day = data["observation_date"]
        names = {f.name for f in fields(cls)} - {"cost", "saved_margin", "roi", "note"}
        return cls(
            **{k: data[k] for k in names if k != "observation_date"},
            observation_date=day if isinstance(day, date) else date.fromisoformat(day),
            cost={s: data[f"cost_{s}"] for s in SCENARIOS},
            saved_margin={s: data[f"saved_margin_{s}"] for s in SCENARIOS},
            roi={s: data[f"roi_{s}"] for s in SCENARIOS},
        )


def backtest_plan(
    plan_customers: pl.DataFrame,
    outcomes: pl.DataFrame,
    playbook: Playbook,
    *,
    observation_date: date,
    horizon_days: int,
    margin_rate: float | None = None,
    n_simulations: int = 2000,
    seed: int = 0,
) -> BacktestResult:
    """Backtest one matured month.

    ``plan_customers``: :attr:`CampaignPlan.customers` built at T (customer_id, selected,
    action_mid, expected_cost_low/mid/high). ``outcomes``: customer_id, churned (0/1, NULL while
    immature: dropped), trailing_revenue (see module docstring).
    """
    margin = playbook.margin_rate if margin_rate is None else margin_rate
    frame = (
        plan_customers.select(
            pl.col("customer_id").cast(pl.String),
            "selected",
            "action_mid",
            *[f"expected_cost_{s}" for s in SCENARIOS],
        )
        .join(
            outcomes.select(
                pl.col("customer_id").cast(pl.String),
                pl.col("churned").cast(pl.Int8),
                pl.col("trailing_revenue").cast(pl.Float64).fill_null(0.0),
            ),
            on="customer_id",
            how="inner",
        )
        .filter(pl.col("churned").is_not_null())
        .sort("customer_id")
        .with_columns(
            revenue_lost=pl.when(pl.col("churned") == 1)
            .then(pl.col("trailing_revenue"))
            .otherwise(0.0)
        )
    )
    churned = frame["churned"].to_numpy().astype(bool)
    lost = frame["revenue_lost"].to_numpy()
    targeted = frame["selected"].to_numpy().astype(bool)
    n, k = frame.height, int(targeted.sum())
    c, r = int(churned.sum()), float(lost.sum())
    share = c / n if n else 0.0
    expected_churners = k * share
    sd = math.sqrt(k * share * (1 - share) * (n - k) / (n - 1)) if n > 1 else 0.0
    rng = np.random.default_rng(seed)
    sim_churners = np.empty(n_simulations)
    sim_revenue = np.empty(n_simulations)
    for i in range(n_simulations):
        draw = rng.choice(n, size=k, replace=False) if k else np.array([], dtype=int)
        sim_churners[i] = churned[draw].sum()
        sim_revenue[i] = lost[draw].sum()
    actions = {a.name: a for a in playbook.actions}
    names = frame["action_mid"].to_list()
    cost: dict[str, float] = {}
    saved: dict[str, float] = {}
    roi: dict[str, float] = {}
    for s in SCENARIOS:
        uplift = np.array(
            [actions[a].uplift[s] if a != NO_ACTION and a in actions else 0.0 for a in names]
        )
        cost[s] = float(frame[f"expected_cost_{s}"].to_numpy()[targeted].sum())
        saved[s] = float((uplift * lost * margin)[targeted & churned].sum())
        roi[s] = (saved[s] - cost[s]) / cost[s] if cost[s] > 0 else float("nan")
    return BacktestResult(
        observation_date=observation_date,
        horizon_days=horizon_days,
        population=n,
        churners=c,
        revenue_lost=r,
        targeted=k,
        churners_reached=int((targeted & churned).sum()),
        revenue_lost_reached=float(lost[targeted].sum()),
        random_churners_expected=expected_churners,
        random_churners_sd=sd,
        random_churners_p05=float(np.quantile(sim_churners, 0.05)),
        random_churners_p95=float(np.quantile(sim_churners, 0.95)),
        random_revenue_expected=k * r / n if n else 0.0,
        random_revenue_p05=float(np.quantile(sim_revenue, 0.05)),
        random_revenue_p95=float(np.quantile(sim_revenue, 0.95)),
        cost=cost,
        saved_margin=saved,
        roi=roi,
    )


def backtest_table(results: list[BacktestResult]) -> pl.DataFrame:
    """One row per backtested month (the asset metadata table and the report's table)."""
    rows = [{k: v for k, v in r.as_dict().items() if k != "note"} for r in results]
    if not rows:
        return pl.DataFrame()
    return (
        pl.DataFrame(rows)
        .with_columns(pl.col("observation_date").str.to_date())
        .sort("observation_date")
    )
