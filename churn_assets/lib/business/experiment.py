"""Experiment design of a campaign's holdout: can it measure the uplift the playbook assumes?

The campaign compares the churn rate of its control group (not contacted) with its treatment
group after the observation horizon. The test is a two-sided comparison of two proportions on
Cohen's h = 2·asin(√p_control) - 2·asin(√p_treated) (statsmodels ``proportion_effectsize``)
with the normal approximation (``NormalIndPower``), the standard for A/B tests of rates.

* Assumed effect: the control churn rate is the mean predicted churn of the selected customers;
  the treated rate is that × (1 - assumed relative uplift) (the playbook's mid uplift of the
  actions chosen, averaged over the treated customers).
* Required size: per arm for a balanced split (the textbook figure), and the control and
  treatment sizes needed at the campaign's actual allocation ratio.
* Minimal detectable effect (MDE): the smallest drop in churn rate the actual arm sizes detect
  with the requested power, as an absolute and a relative reduction.
* Verdict: ``adequate`` when the power at the actual sizes reaches the target; ``too small to
  learn anything`` when it is below 50% (the experiment is then more likely to miss the assumed
  effect than to see it, so a null result carries no information) or an arm is empty;
  ``underpowered`` in between.
* Duration: results are readable once the label horizon after the campaign date has passed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from typing import Any

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

ADEQUATE = "adequate"
UNDERPOWERED = "underpowered"
TOO_SMALL = "too small to learn anything"
_USELESS_POWER = 0.5


def required_per_arm(
    p_control: float, p_treated: float, alpha: float = 0.05, power: float = 0.80
) -> int:
    """Customers per arm (balanced) to detect p_control → p_treated, two-sided, rounded up."""
    effect = proportion_effectsize(p_control, p_treated)
    n = NormalIndPower().solve_power(
        effect_size=effect, alpha=alpha, power=power, ratio=1.0, alternative="two-sided"
    )
    return math.ceil(float(n))


def treated_rate_from_h(p_control: float, h: float) -> float:
    """The treated churn rate that is h below p_control on the arcsine scale (0 at most)."""
    angle = math.asin(math.sqrt(p_control)) - h / 2
    return math.sin(angle) ** 2 if angle > 0 else 0.0


@dataclass(frozen=True)
class ExperimentDesign:
    control_churn_rate: float
    assumed_relative_uplift: float
    assumed_treated_churn_rate: float
    effect_size_h: float
    alpha: float
    power: float
    n_treatment: int
    n_control: int
    required_per_arm: int | None
    required_control: int | None
    required_treatment: int | None
    achieved_power: float
    mde_absolute: float
    mde_relative: float
    horizon_days: int
    start: date | None
    readout_date: date | None
    verdict: str
    explanation: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("start", "readout_date"):
            out[key] = out[key].isoformat() if out[key] else None
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentDesign:
        """Back from :meth:`as_dict` (or a stored table row): the report reads the design the
        experiment asset stored instead of re-deriving it."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("start", "readout_date"):
            day = values.get(key)
            values[key] = date.fromisoformat(day) if isinstance(day, str) else day
        return cls(**values)


def design_experiment(
    *,
    n_treatment: int,
    n_control: int,
    control_churn_rate: float,
    relative_uplift: float,
    horizon_days: int,
    alpha: float = 0.05,
    power: float = 0.80,
    start: date | None = None,
) -> ExperimentDesign:
    """Power analysis of one campaign (see module docstring for every figure)."""
    if not 0 < control_churn_rate < 1:
        raise ValueError(f"control churn rate must be in (0, 1), got {control_churn_rate}")
    if not 0 <= relative_uplift < 1:
        raise ValueError(f"relative uplift must be in [0, 1), got {relative_uplift}")
    treated_rate = control_churn_rate * (1 - relative_uplift)
    h = float(proportion_effectsize(control_churn_rate, treated_rate))
    analysis = NormalIndPower()
    per_arm = required_control = required_treatment = None
    if h > 0:
        per_arm = required_per_arm(control_churn_rate, treated_rate, alpha, power)
        if n_control > 0 and n_treatment > 0:
            ratio = n_treatment / n_control
            control_needed = analysis.solve_power(
                effect_size=h, alpha=alpha, power=power, ratio=ratio, alternative="two-sided"
            )
            required_control = math.ceil(float(control_needed))
            required_treatment = math.ceil(float(control_needed) * ratio)
    achieved = mde_abs = mde_rel = float("nan")
    if n_control >= 2 and n_treatment >= 2:
        ratio = n_treatment / n_control
        achieved = (
            float(analysis.power(effect_size=h, nobs1=n_control, alpha=alpha, ratio=ratio))
            if h > 0
            else alpha
        )
        h_min = float(
            analysis.solve_power(
                effect_size=None, nobs1=n_control, alpha=alpha, power=power, ratio=ratio
            )
        )
        mde_abs = control_churn_rate - treated_rate_from_h(control_churn_rate, h_min)
        mde_rel = mde_abs / control_churn_rate
    verdict, text = _verdict(
        n_treatment,
        n_control,
        control_churn_rate,
        treated_rate,
        achieved,
        power,
        mde_abs,
        mde_rel,
        per_arm,
        required_control,
        horizon_days,
    )
    return ExperimentDesign(
        control_churn_rate=control_churn_rate,
        assumed_relative_uplift=relative_uplift,
        assumed_treated_churn_rate=treated_rate,
        effect_size_h=h,
        alpha=alpha,
        power=power,
        n_treatment=int(n_treatment),
        n_control=int(n_control),
        required_per_arm=per_arm,
        required_control=required_control,
        required_treatment=required_treatment,
        achieved_power=achieved,
        mde_absolute=mde_abs,
        mde_relative=mde_rel,
        horizon_days=horizon_days,
        start=start,
        readout_date=start + timedelta(days=horizon_days) if start else None,
        verdict=verdict,
        explanation=text,
    )


def _pct(share: float) -> str:
    """Power as a percentage that never rounds a shortfall up to 100%."""
    return "over 99%" if share >= 0.995 else f"{share:.0%}"


def _verdict(
    n_treatment: int,
    n_control: int,
    p_control: float,
    p_treated: float,
    achieved: float,
    power: float,
    mde_abs: float,
    mde_rel: float,
    per_arm: int | None,
    required_control: int | None,
    horizon_days: int,
) -> tuple[str, str]:
    effect = (
        f"the assumed drop in churn from {p_control:.1%} to {p_treated:.1%} "
        f"({(p_control - p_treated) * 100:.1f} percentage points)"
    )
    readout = f"Results can be read {horizon_days} days after the campaign starts."
    if n_control < 2 or n_treatment < 2 or not math.isfinite(achieved):
        return TOO_SMALL, (
            f"With {n_treatment:,} treated and {n_control:,} control customers there is no "
            f"comparison to make: the campaign is too small to learn anything about {effect}."
        )
    sizes = f"{n_treatment:,} treated and {n_control:,} control customers"
    mde = (
        f"the smallest detectable drop is {mde_abs * 100:.1f} points ({mde_rel:.0%} of the "
        "churn rate)"
    )
    need = (
        f" Detecting it needs {per_arm:,} customers per arm in a 50/50 split"
        + (
            f", or {required_control:,} controls at this campaign's split"
            if required_control
            else ""
        )
        + "."
        if per_arm
        else ""
    )
    if achieved >= power:
        return ADEQUATE, (
            f"With {sizes} the experiment has {_pct(achieved)} power to detect {effect}; "
            f"{mde}. {readout}"
        )
    if achieved < _USELESS_POWER or mde_abs >= p_control:
        return TOO_SMALL, (
            f"Too small to learn anything: with {sizes} the power to detect {effect} is only "
            f"{_pct(achieved)}, and {mde}.{need} A result of 'no difference' from this campaign "
            f"would say nothing about the action. {readout}"
        )
    return UNDERPOWERED, (
        f"Underpowered: with {sizes} the power to detect {effect} is {_pct(achieved)} "
        f"(target {power:.0%}); {mde}.{need} {readout}"
    )
