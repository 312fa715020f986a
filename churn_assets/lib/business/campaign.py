"""Campaign plan: who gets contacted within a budget, and a holdout that measures the effect.

Selection. Customers are ranked by their mid-scenario expected net value (see
:mod:`.playbook`); only customers with a strictly positive net value and an action are
eligible. Walking down the ranking, a customer is selected when their cost still fits in what
is left of the budget, otherwise skipped (a cheaper customer further down may still fit).
The budget is checked against ``committed_cost`` by default: contact cost plus the full offer,
i.e. the spend if every offer were accepted, so the budget holds whatever the acceptance turns
out to be. ``cost_basis="expected"`` uses the mid-scenario expected cost instead (more
customers, but the realized spend can then exceed the budget).

Holdout. Every selected customer is assigned to control (not contacted) or treatment by a
stable hash: u = int(sha256("<campaign_id>|<customer_id>")[:16 hex digits]) / 16^16, a uniform
number in [0, 1); control when u < control_share. Re-running the plan never reshuffles anyone,
two campaigns (different ids) are independent, and nobody can nudge a customer into or out of
the holdout. Controls cost nothing, so the spend on the treatment group stays within budget.

Sample-ratio-mismatch (SRM) check: a chi-square goodness-of-fit test of the treatment/control
counts against the intended shares. A p-value below the threshold (default 0.001, the usual
convention: SRM checks run on every campaign, so a strict threshold keeps false alarms rare)
means the assignment is broken and the experiment's result must not be read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl
from scipy.stats import chisquare

from churn_assets.lib.business.playbook import NO_ACTION, SCENARIOS

TREATMENT = "treatment"
CONTROL = "control"
NOT_TARGETED = "not targeted"
CostBasis = Literal["committed", "expected"]
_HASH_SCALE = float(16**16)


def campaign_id_for(dataset: str, observation_date: date, playbook_version: str) -> str:
    """A campaign is one dataset, one observation date and one playbook version."""
    return f"{dataset}-{observation_date.isoformat()}-playbook-v{playbook_version}"


def holdout_unit(customer_id: str, campaign_id: str) -> float:
    """The customer's stable uniform draw in [0, 1) for this campaign (see module docstring)."""
    digest = hashlib.sha256(f"{campaign_id}|{customer_id}".encode()).hexdigest()
    return int(digest[:16], 16) / _HASH_SCALE


def assign_holdout(
    customer_ids: Iterable[str], campaign_id: str, control_share: float
) -> np.ndarray:
    """True for the customers that go to control."""
    if not 0.0 < control_share < 1.0:
        raise ValueError(f"control_share must be in (0, 1), got {control_share}")
    return np.array(
        [holdout_unit(str(c), campaign_id) < control_share for c in customer_ids], dtype=bool
    )


@dataclass(frozen=True)
class SRMResult:
    n_treatment: int
    n_control: int
    expected_control_share: float
    statistic: float
    p_value: float
    threshold: float

    @property
    def passed(self) -> bool:
        """True unless the split is implausible under the intended shares."""
        return not self.p_value < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_treatment": self.n_treatment,
            "n_control": self.n_control,
            "expected_control_share": self.expected_control_share,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "threshold": self.threshold,
            "passed": self.passed,
        }


def srm_check(
    n_treatment: int, n_control: int, control_share: float, threshold: float = 0.001
) -> SRMResult:
    """Chi-square test of (treatment, control) counts against (1 - share, share)."""
    total = n_treatment + n_control
    if total == 0:
        return SRMResult(0, 0, control_share, 0.0, 1.0, threshold)
    expected = [total * (1 - control_share), total * control_share]
    result = chisquare([n_treatment, n_control], f_exp=expected)
    return SRMResult(
        n_treatment=int(n_treatment),
        n_control=int(n_control),
        expected_control_share=control_share,
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        threshold=threshold,
    )


@dataclass(frozen=True)
class CampaignPlan:
    """The plan: ``customers`` has every input customer with ``rank``, ``selected``, ``group``
    (treatment / control / not targeted) and ``planned_cost`` (the budget basis, 0 unless
    treated); ``summary`` holds the totals the report and the asset metadata show."""

    campaign_id: str
    budget: float
    control_share: float
    cost_basis: CostBasis
    customers: pl.DataFrame
    srm: SRMResult
    summary: dict[str, Any]


def select_within_budget(
    net_value: np.ndarray, cost: np.ndarray, eligible: np.ndarray, budget: float
) -> tuple[np.ndarray, np.ndarray]:
    """(selected mask, rank) — rank 1 = highest net value among the eligible, 0 = ineligible.

    Greedy by net value: take each eligible customer whose cost still fits in the budget left.
    Ties in net value are broken by row order (callers sort by customer_id first).
    """
    n = len(net_value)
    selected = np.zeros(n, dtype=bool)
    rank = np.zeros(n, dtype=int)
    candidates = np.flatnonzero(eligible)
    order = candidates[np.argsort(-net_value[candidates], kind="mergesort")]
    rank[order] = np.arange(1, len(order) + 1)
    left = float(budget)
    for i in order:
        if cost[i] <= left + 1e-9:
            selected[i] = True
            left -= cost[i]
    return selected, rank


def plan_campaign(
    recommendations: pl.DataFrame,
    *,
    budget: float,
    campaign_id: str,
    control_share: float = 0.10,
    cost_basis: CostBasis = "committed",
    srm_threshold: float = 0.001,
) -> CampaignPlan:
    """Select, assign the holdout and total up a campaign from
    :func:`~churn_assets.lib.business.playbook.recommend_actions` output."""
    if budget < 0:
        raise ValueError("budget must be >= 0")
    frame = recommendations.sort("customer_id")
    net = frame["net_value_mid"].to_numpy().astype(float)
    action = frame["action_mid"].to_numpy()
    eligible = (net > 0) & (action != NO_ACTION)
    cost_column = "committed_cost" if cost_basis == "committed" else "expected_cost_mid"
    cost = frame[cost_column].to_numpy().astype(float)
    selected, rank = select_within_budget(net, cost, eligible, budget)
    ids = frame["customer_id"].cast(pl.String).to_list()
    control = np.zeros(len(ids), dtype=bool)
    control[selected] = assign_holdout(
        [ids[i] for i in np.flatnonzero(selected)], campaign_id, control_share
    )
    treated = selected & ~control
    group = np.where(treated, TREATMENT, np.where(control, CONTROL, NOT_TARGETED))
    customers = frame.with_columns(
        rank=pl.Series(rank, dtype=pl.Int64),
        selected=pl.Series(selected),
        group=pl.Series(group.tolist(), dtype=pl.String),
        holdout_unit=pl.Series([holdout_unit(c, campaign_id) for c in ids]),
        planned_cost=pl.Series(np.where(treated, cost, 0.0)),
    )
    return plan_from_rows(
        customers,
        campaign_id=campaign_id,
        budget=budget,
        control_share=control_share,
        cost_basis=cost_basis,
        srm_threshold=srm_threshold,
    )


def plan_from_rows(
    customers: pl.DataFrame,
    *,
    campaign_id: str,
    budget: float,
    control_share: float,
    cost_basis: CostBasis,
    srm_threshold: float,
) -> CampaignPlan:
    """A plan from its per-customer rows (``group`` assigned): the split check and the totals
    are always recomputed from the rows, so a stored plan read back is checked on what was
    stored, not on what the planner believed it wrote."""
    groups = customers["group"]
    srm = srm_check(
        int((groups == TREATMENT).sum()),
        int((groups == CONTROL).sum()),
        control_share,
        srm_threshold,
    )
    cost_column = "committed_cost" if cost_basis == "committed" else "expected_cost_mid"
    summary = campaign_summary(customers, budget=budget, cost_column=cost_column)
    summary |= {"campaign_id": campaign_id, "control_share": control_share}
    summary |= {"cost_basis": cost_basis, "srm_passed": srm.passed, "srm_p_value": srm.p_value}
    return CampaignPlan(
        campaign_id=campaign_id,
        budget=float(budget),
        control_share=control_share,
        cost_basis=cost_basis,
        customers=customers,
        srm=srm,
        summary=summary,
    )


def campaign_summary(customers: pl.DataFrame, *, budget: float, cost_column: str) -> dict[str, Any]:
    """Totals of a planned campaign, all sums over the per-customer rows.

    Treatment figures are what the campaign is expected to deliver; control figures are what
    the holdout forgoes to make the effect measurable.
    """
    treated = customers.filter(pl.col("group") == TREATMENT)
    control = customers.filter(pl.col("group") == CONTROL)
    selected = customers.filter(pl.col("selected"))
    out: dict[str, Any] = {
        "budget": float(budget),
        "eligible": int(((customers["net_value_mid"] > 0) & (customers["rank"] > 0)).sum()),
        "selected": selected.height,
        "treatment": treated.height,
        "control": control.height,
        "selected_cost": float(selected[cost_column].sum()),
        "planned_spend": float(treated["planned_cost"].sum()),
        "committed_spend": float(treated["committed_cost"].sum()),
    }
    for s in SCENARIOS:
        out[f"expected_spend_{s}"] = float(treated[f"expected_cost_{s}"].sum())
        out[f"expected_net_value_{s}"] = float(treated[f"plan_net_value_{s}"].sum())
        out[f"expected_saved_revenue_{s}"] = float(treated[f"expected_saved_revenue_{s}"].sum())
        out[f"forgone_net_value_{s}"] = float(control[f"plan_net_value_{s}"].sum())
    out["actions"] = dict(treated.group_by("action_mid").len().sort("action_mid").iter_rows())
    return out
