"""Power analysis: the textbook figure, agreement with statsmodels, and honest verdicts."""

from __future__ import annotations

import math
from datetime import date

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from churn_assets.lib.business.experiment import (
    ADEQUATE,
    TOO_SMALL,
    UNDERPOWERED,
    design_experiment,
    required_per_arm,
    treated_rate_from_h,
)


def test_33_to_28_percent_needs_1329_per_arm():
    # statsmodels: 1328.99 → 1,329 customers per arm at α 0.05, power 0.8, two-sided.
    assert required_per_arm(0.33, 0.28, alpha=0.05, power=0.80) == 1329


@pytest.mark.parametrize(
    ("p1", "p2", "alpha", "power"),
    [
        (0.33, 0.28, 0.05, 0.8),
        (0.45, 0.43, 0.05, 0.9),
        (0.10, 0.07, 0.01, 0.8),
        (0.6, 0.5, 0.1, 0.7),
    ],
)
def test_required_size_equals_statsmodels(p1, p2, alpha, power):
    n = NormalIndPower().solve_power(
        effect_size=proportion_effectsize(p1, p2), alpha=alpha, power=power, ratio=1.0
    )
    assert required_per_arm(p1, p2, alpha, power) == math.ceil(n)


def test_design_figures_are_consistent_with_statsmodels():
    design = design_experiment(
        n_treatment=5000,
        n_control=600,
        control_churn_rate=0.33,
        relative_uplift=1 - 0.28 / 0.33,
        horizon_days=90,
        start=date(2011, 6, 1),
    )
    h = proportion_effectsize(0.33, 0.28)
    assert design.effect_size_h == pytest.approx(h)
    assert design.required_per_arm == 1329
    assert design.achieved_power == pytest.approx(
        NormalIndPower().power(effect_size=h, nobs1=600, alpha=0.05, ratio=5000 / 600)
    )
    # The MDE is exactly the effect the actual arms detect with the target power.
    h_mde = proportion_effectsize(0.33, 0.33 - design.mde_absolute)
    assert NormalIndPower().power(
        effect_size=h_mde, nobs1=600, alpha=0.05, ratio=5000 / 600
    ) == pytest.approx(0.80, abs=1e-4)
    # Required controls at this split reach the target power.
    assert design.required_control is not None
    assert (
        NormalIndPower().power(
            effect_size=h, nobs1=design.required_control, alpha=0.05, ratio=5000 / 600
        )
        >= 0.80
    )
    assert design.readout_date == date(2011, 8, 30)
    assert design.verdict == UNDERPOWERED


def test_verdicts():
    def verdict(n_t: int, n_c: int) -> str:
        return design_experiment(
            n_treatment=n_t,
            n_control=n_c,
            control_churn_rate=0.33,
            relative_uplift=1 - 0.28 / 0.33,
            horizon_days=90,
        ).verdict

    assert verdict(1400, 1400) == ADEQUATE
    assert verdict(300, 33) == TOO_SMALL
    assert verdict(0, 0) == TOO_SMALL
    small = design_experiment(
        n_treatment=300,
        n_control=33,
        control_churn_rate=0.33,
        relative_uplift=0.15,
        horizon_days=90,
    )
    assert "Too small to learn anything" in small.explanation
    assert "1,329 customers per arm" not in small.explanation  # different assumed effect


def test_treated_rate_from_h_inverts_the_effect_size():
    h = proportion_effectsize(0.4, 0.3)
    assert treated_rate_from_h(0.4, h) == pytest.approx(0.3)
    assert treated_rate_from_h(0.05, 5.0) == 0.0
