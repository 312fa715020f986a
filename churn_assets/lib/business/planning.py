"""One observation date's business decisions in one call: what a business asset runs per T.

scores + values (+ labels) → customer table → actions per scenario → campaign plan with holdout
→ experiment design. Each step is its own module; this only wires them with the playbook's
campaign settings, so the Dagster assets stay thin and every dataset runs the same code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from churn_assets.lib.business.campaign import (
    TREATMENT,
    CampaignPlan,
    CostBasis,
    campaign_id_for,
    plan_campaign,
)
from churn_assets.lib.business.cohorts import cohort_table, customer_table
from churn_assets.lib.business.experiment import ExperimentDesign, design_experiment
from churn_assets.lib.business.playbook import NO_ACTION, Playbook, recommend_actions


@dataclass(frozen=True)
class MonthPlan:
    """Everything decided at one observation date. ``plan.customers`` is the per-customer
    table (scores, value, tier, reason, actions, selection, group) every total comes from."""

    dataset: str
    observation_date: date
    plan: CampaignPlan
    cohorts: pl.DataFrame
    experiment: ExperimentDesign

    @property
    def customers(self) -> pl.DataFrame:
        return self.plan.customers


def experiment_for_plan(
    plan: CampaignPlan,
    playbook: Playbook,
    *,
    horizon_days: int,
    start: date | None = None,
) -> ExperimentDesign:
    """Power analysis of a plan's holdout.

    Control churn rate: mean predicted churn of the selected customers (the population the two
    arms are drawn from). Assumed relative uplift: the playbook's mid uplift of the action each
    treated customer gets, averaged over the treated. With nobody selected, the scored
    population's mean churn and the playbook's mean mid uplift stand in, so the verdict can
    still say how far the campaign is from measurable.
    """
    rows = plan.customers
    selected = rows.filter(pl.col("selected"))
    base = selected if selected.height else rows
    probabilities = base["churn_probability"].to_numpy()
    mean_rate = float(probabilities.mean()) if len(probabilities) else 0.5
    control_rate = float(np.clip(mean_rate, 1e-6, 1 - 1e-6))
    uplifts = {a.name: a.uplift["mid"] for a in playbook.actions}
    treated = rows.filter(pl.col("group") == TREATMENT)["action_mid"].to_list()
    values = [uplifts[a] for a in treated if a != NO_ACTION]
    uplift = float(np.mean(values)) if values else float(np.mean(list(uplifts.values())))
    return design_experiment(
        n_treatment=plan.srm.n_treatment,
        n_control=plan.srm.n_control,
        control_churn_rate=control_rate,
        relative_uplift=min(uplift, 0.999),
        horizon_days=horizon_days,
        alpha=playbook.campaign.alpha,
        power=playbook.campaign.power,
        start=start,
    )


def plan_month(
    scores: pl.DataFrame,
    values: pl.DataFrame,
    families: Mapping[str, str],
    playbook: Playbook,
    *,
    dataset: str,
    observation_date: date,
    horizon_days: int,
    labels: pl.DataFrame | None = None,
    budget: float | None = None,
    control_share: float | None = None,
    cost_basis: CostBasis = "committed",
) -> MonthPlan:
    """Customer table, actions, campaign (budget and holdout from the playbook unless given),
    cohort map and experiment design of one observation date.

    ``horizon_days``: the label horizon, i.e. how long after T the campaign's effect on churn
    can be read (the experiment's duration).
    """
    customers = customer_table(scores, values, families, labels)
    recommendations = recommend_actions(customers, playbook)
    plan = plan_campaign(
        recommendations,
        budget=playbook.campaign.budget if budget is None else budget,
        campaign_id=campaign_id_for(dataset, observation_date, playbook.version),
        control_share=playbook.campaign.control_share if control_share is None else control_share,
        cost_basis=cost_basis,
        srm_threshold=playbook.campaign.srm_p_threshold,
    )
    return MonthPlan(
        dataset=dataset,
        observation_date=observation_date,
        plan=plan,
        cohorts=cohort_table(plan.customers),
        experiment=experiment_for_plan(
            plan, playbook, horizon_days=horizon_days, start=observation_date
        ),
    )
