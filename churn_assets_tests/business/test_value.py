"""Customer value: the purchase summary, point-in-time fitting, snapshot value, and the
out-of-time check on the real retail history."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from churn_assets.lib.business.clv import BGNBDParams, simulate_bgnbd
from churn_assets.lib.business.value import (
    constant_hazards,
    discounted_expected_purchases,
    events_customer_value,
    events_value_method,
    expected_remaining_months,
    purchase_summary,
    snapshot_customer_value,
    snapshot_value_method,
)
from churn_assets.lib.business.value_check import value_out_of_time_check
from churn_assets_tests.business.real_data import raw_table, retail_purchases

T = date(2011, 3, 1)


def _events(rows: list[tuple[str, datetime, float, str]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "event_ts": [r[1] for r in rows],
            "amount": [r[2] for r in rows],
            "event_type": [r[3] for r in rows],
            "order_id": [f"o{i}" for i in range(len(rows))],
        }
    )


def test_purchase_summary_counts_purchase_days_before_t():
    day = datetime(2011, 1, 1, 9)
    events = _events(
        [
            ("A", day, 10.0, "purchase"),
            ("A", day + timedelta(hours=5), 5.0, "purchase"),  # same day: one transaction
            ("A", day + timedelta(days=3), 20.0, "purchase"),
            ("A", day + timedelta(days=9), 30.0, "purchase"),
            ("A", day + timedelta(days=10), -30.0, "return"),  # not a purchase
            ("A", datetime(2011, 3, 1), 999.0, "purchase"),  # at T: not before T
            ("B", datetime(2011, 2, 27, 23), 40.0, "purchase"),
            ("C", datetime(2011, 3, 2), 50.0, "purchase"),  # first purchase after T
        ]
    )
    summary = purchase_summary(events, T)
    assert summary["customer_id"].to_list() == ["A", "B"]
    a, b = summary.to_dicts()
    assert a == {
        "customer_id": "A",
        "frequency": 2,
        "recency_days": 9.0,
        "age_days": 59.0,  # 2011-01-01 -> 2011-03-01
        "monetary_value": 25.0,  # mean of the repeat days (20, 30), first day excluded
        "purchase_days": 3,
        "revenue": 65.0,
    }
    assert b["frequency"] == 0 and b["monetary_value"] == 0.0 and b["age_days"] == 2.0


def _simulated_events(n: int, seed: int) -> pl.DataFrame:
    """Customers from a BG/NBD process, one purchase per day at most, spend ~ 20-80."""
    rng = np.random.default_rng(seed)
    start = datetime(2010, 1, 1)
    births = rng.uniform(0, 300, n)
    _, _, times = simulate_bgnbd(BGNBDParams(0.8, 20.0, 0.6, 3.0), 600 - births, rng)
    rows = []
    for i, (birth, repeat) in enumerate(zip(births, times, strict=True)):
        for offset in [0.0, *repeat.tolist()]:
            ts = start + timedelta(days=float(birth + offset))
            rows.append((f"{i:05d}", ts, float(rng.uniform(20, 80)), "purchase"))
    return _events(rows)


def test_value_at_t_ignores_everything_from_t_on():
    events = _simulated_events(600, seed=1)
    cut = date(2010, 11, 1)
    before, model = events_customer_value(events, cut)
    future = events.filter(pl.col("event_ts") >= datetime(2010, 11, 1)).with_columns(
        amount=pl.col("amount") * 10
    )
    extra = _events([("99999", datetime(2010, 11, 1), 1e6, "purchase")])
    changed = pl.concat([events.filter(pl.col("event_ts") < datetime(2010, 11, 1)), future, extra])
    after, model_after = events_customer_value(changed, cut)
    assert model_after == model
    assert after.equals(before)
    assert (before["value"] >= 0).all()
    assert before["value_horizon_days"].unique().to_list() == [365.0]


def test_discounting_lowers_value_by_at_most_one_year_of_interest():
    params = BGNBDParams(0.8, 20.0, 0.6, 3.0)
    x, t_x, age = np.array([0.0, 4, 12]), np.array([0.0, 100, 280]), np.array([50.0, 200, 300])
    plain = discounted_expected_purchases(params, 365, x, t_x, age)
    discounted = discounted_expected_purchases(params, 365, x, t_x, age, 0.10)
    assert np.all(discounted < plain)
    assert np.all(discounted > plain / 1.10)


def test_snapshot_value_uses_a_constant_hazard_per_group():
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "contract": ["m", "m", "m", "y", "y"],
            "tenure": [10, 20, 10, 30, 30],
            "monthly_charges": [50.0, 80.0, 20.0, 100.0, 60.0],
            "churned": [1, 0, 1, 0, 0],
        }
    )
    values, hazards = snapshot_customer_value(frame)
    assert hazards.filter(pl.col("contract") == "m")["monthly_hazard"][0] == pytest.approx(2 / 40)
    assert hazards.filter(pl.col("contract") == "y")["monthly_hazard"][0] == 0.0
    months_m = (1 - math.exp(-0.05 * 12)) / 0.05
    assert values["expected_remaining_months"].to_list() == pytest.approx(
        [months_m] * 3 + [12.0, 12.0]
    )
    assert values["value"].to_list() == pytest.approx(
        [50 * months_m, 80 * months_m, 20 * months_m, 1200.0, 720.0]
    )
    uncapped, _ = snapshot_customer_value(
        frame.filter(pl.col("contract") == "m"), horizon_months=None
    )
    assert uncapped["expected_remaining_months"].to_list() == pytest.approx([20.0] * 3)
    with pytest.raises(ValueError, match="infinite"):
        snapshot_customer_value(frame, horizon_months=None)


def test_remaining_months_tends_to_the_horizon_for_tiny_hazards():
    assert expected_remaining_months(np.array([1e-12]), 12.0)[0] == pytest.approx(12.0)
    assert (
        constant_hazards(
            pl.DataFrame({"g": ["x"], "t": [0], "y": [1]}),
            group_column="g",
            tenure_column="t",
            label_column="y",
        )["monthly_hazard"][0]
        is None
    )


def test_out_of_time_check_labels_a_partial_window():
    events = _simulated_events(400, seed=2)
    check = value_out_of_time_check(events, date(2011, 6, 1))
    assert not check.full_horizon
    assert check.covered_days < 365
    assert check.window_label.startswith("PARTIAL")
    with pytest.raises(ValueError, match="nothing after"):
        value_out_of_time_check(events, date(2013, 1, 1))


@pytest.mark.xdist_group("retail_real")
def test_out_of_time_check_on_real_retail_history():
    """Fit on purchases before 2010-12-01 (the bundled Online Retail II lines, read through the
    contract), predict the next 365 days, compare with what those customers spent (covered in
    full: the data runs to 2011-12-09). Totals are reconciled against an independent sum over
    the raw table; the model's error is printed and kept within what ranking and budgeting
    need."""
    t = date(2010, 12, 1)
    end = t + timedelta(days=365)
    check = value_out_of_time_check(retail_purchases(until=end), t, data_end=date(2011, 12, 10))
    assert check.full_horizon and check.covered_days == 365

    raw = raw_table("retail")
    lines = raw.filter(
        (pl.col("event_type") == "purchase")
        & pl.col("customer_id").is_not_null()
        & pl.col("exclude_reason").is_null()
    )
    known = lines.filter(pl.col("event_ts") < datetime(2010, 12, 1))["customer_id"].unique()
    realized = lines.filter(
        pl.col("customer_id").is_in(known)
        & (pl.col("event_ts") >= datetime(2010, 12, 1))
        & (pl.col("event_ts") < datetime(2011, 12, 1))
    )["amount"].sum()
    assert check.n_customers == known.len()
    assert check.total_realized == pytest.approx(realized, rel=1e-9)
    assert check.calibration["customers"].sum() == known.len()

    print(f"customer value out of time at {t}: {check.as_dict()}")
    # What the model must achieve on real data to be usable for ranking and budgeting
    # (measured: Spearman 0.59, total predicted / realized 1.30). It does not beat the naive
    # "same as last year" guess per customer (MAE 1,317 vs 1,158, Spearman 0.59 vs 0.62): the
    # report says so next to the figures.
    assert check.spearman > 0.5
    assert 0.8 < check.total_ratio < 1.5
    assert check.rmse < check.naive_rmse
    deciles = check.calibration.sort("decile")
    assert deciles["mean_realized"][-1] > 10 * deciles["mean_realized"][0]


def test_value_method_texts_carry_the_fitted_figures():
    events = _simulated_events(300, seed=4)
    _, model = events_customer_value(events, date(2010, 11, 1))
    text = events_value_method(model, 365, currency="GBP")
    assert f"{model.bgnbd.n_customers:,} customers" in text
    assert f"once every {model.bgnbd.alpha / model.bgnbd.r:,.0f} days" in text
    assert f"GBP {model.gamma_gamma.population_mean_spend:,.0f}" in text
    frame = pl.DataFrame(
        {
            "customer_id": ["a", "b"],
            "contract": ["m", "y"],
            "tenure": [10, 20],
            "monthly_charges": [50.0, 60.0],
            "churned": [1, 0],
        }
    )
    _, hazards = snapshot_customer_value(frame)
    assert snapshot_value_method(hazards, "contract", 12).endswith("m 10.00%, y 0.00%.")
