"""Backtest: reach against random targeting, revenue lost, ROI from the playbook's range."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from churn_assets.lib.business.backtest import NO_MEASURED_UPLIFT, backtest_plan, backtest_table
from churn_assets.lib.business.planning import plan_month
from churn_assets.lib.business.playbook import SCENARIOS, parse_playbook
from churn_assets_tests.business.fixtures import FAMILIES, PLAYBOOK_DATA, synthetic_month

PLAYBOOK = parse_playbook(PLAYBOOK_DATA, "test")


def _plan_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f"],
            "selected": [True, True, True, False, False, False],
            "action_mid": ["voucher", "call", "voucher", "no action", "call", "voucher"],
            **{
                f"expected_cost_{s}": [1.0 + 10 * a, 5.0, 1.0 + 10 * a, 0.0, 5.0, 1.0]
                for s, a in zip(SCENARIOS, (0.1, 0.2, 0.3), strict=True)
            },
        }
    )


def test_hand_computed_month():
    outcomes = pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e", "f", "g"],
            "churned": [1, 0, 1, 1, 0, None, 1],  # f immature: dropped; g not in the plan
            "trailing_revenue": [100.0, 50.0, 200.0, 80.0, 10.0, 999.0, 5.0],
        }
    )
    result = backtest_plan(
        _plan_rows(), outcomes, PLAYBOOK, observation_date=date(2011, 3, 1), horizon_days=90
    )
    assert (result.population, result.churners, result.targeted) == (5, 3, 3)
    assert result.churners_reached == 2
    assert result.revenue_lost == 380.0  # a + c + d; stayers lose nothing
    assert result.revenue_lost_reached == 300.0
    assert result.random_churners_expected == pytest.approx(3 * 3 / 5)
    # Hypergeometric sd: k p (1-p) (N-k)/(N-1)
    assert result.random_churners_sd == pytest.approx(np.sqrt(3 * 0.6 * 0.4 * 2 / 4))
    assert result.random_revenue_expected == pytest.approx(3 * 380 / 5)
    for s in SCENARIOS:
        uplift = PLAYBOOK.action("voucher").uplift[s]
        saved = uplift * (100 + 200) * 0.5
        cost = 2 * PLAYBOOK.action("voucher").expected_cost(s) + 5.0
        assert result.saved_margin[s] == pytest.approx(saved)
        assert result.cost[s] == pytest.approx(cost)
        assert result.roi[s] == pytest.approx((saved - cost) / cost)
    assert result.roi["low"] < result.roi["mid"] < result.roi["high"]
    assert "No uplift is measured" in result.note and result.note == NO_MEASURED_UPLIFT


def test_simulated_random_targeting_matches_the_analytic_expectation():
    month = synthetic_month(2000, seed=5)
    plan = plan_month(
        month["scores"],
        month["values"],
        FAMILIES,
        PLAYBOOK,
        dataset="shop",
        observation_date=date(2011, 6, 1),
        horizon_days=90,
        budget=3000,
    )
    outcomes = month["labels"].join(month["trailing"], on="customer_id")
    result = backtest_plan(
        plan.customers,
        outcomes,
        PLAYBOOK,
        observation_date=date(2011, 6, 1),
        horizon_days=90,
        n_simulations=4000,
        seed=1,
    )
    assert result.targeted == plan.plan.summary["selected"] > 100
    sd = result.random_churners_sd
    assert result.random_churners_p05 < result.random_churners_expected < result.random_churners_p95
    # 5-95% of a near-normal count spans about ±1.645 sd.
    assert result.random_churners_p95 - result.random_churners_p05 == pytest.approx(
        2 * 1.645 * sd, rel=0.15
    )
    # Targeting by expected net value reaches more churners than chance on this data.
    assert result.churner_lift > 1.1
    table = backtest_table([result, result])
    assert table.height == 2 and "note" not in table.columns
    assert table["roi_mid"][0] == pytest.approx(result.roi["mid"])
