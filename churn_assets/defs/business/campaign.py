"""The campaign plan: who is contacted within the budget, and the randomized holdout.

Customers are ranked by their expected net value (mid assumptions); the budget is filled in
that order, and a stable hash of (campaign id, customer id) holds a share of the selected
customers out as the control group, so re-running the plan never reshuffles anyone. Budget and
control share come from the playbook's ``campaign`` section unless the run config overrides
them (a what-if from the launchpad); α and power stay the playbook's.

Two blocking checks read the plan back from the table, i.e. check what was stored: the sample
ratio of treatment vs control (chi-square; a failure means the assignment is broken and the
experiment must not be read) and the budget (spend within it, nobody with a non-positive
expected net value targeted).
"""

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from churn_assets import metadata
from churn_assets.defs.business.cohorts import CUSTOMERS_TABLE
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    require_rows,
    rounded,
    table_name,
    write_rows,
)
from churn_assets.defs.business.playbook import ACTIONS_TABLE, KEYS
from churn_assets.defs.monitoring.common import observation_date
from churn_assets.lib.business.campaign import (
    TREATMENT,
    CampaignPlan,
    CostBasis,
    campaign_id_for,
    plan_campaign,
    plan_from_rows,
)
from churn_assets.lib.business.playbook import NO_ACTION, SCENARIOS
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource

PLAN_TABLE = "campaign_plan"
CAMPAIGNS_TABLE = "campaigns"
SRM_CHECK = "sample_ratio"
BUDGET_CHECK = "within_budget"
BUDGET_TOLERANCE = 1e-6
HEADLINE_RANGES = ("net_value", "saved_revenue")


class CampaignConfig(dg.Config):
    """What-if knobs of one run; unset, the playbook's ``campaign`` section decides."""

    budget: float | None = Field(
        default=None, ge=0, description="Budget in the playbook's currency (default: playbook)."
    )
    control_share: float | None = Field(
        default=None, gt=0, lt=0.5, description="Share held out (default: playbook)."
    )
    cost_basis: CostBasis = Field(
        default="committed",
        description="committed: contact + full offer count against the budget (it holds "
        "whatever the acceptance); expected: the mid acceptance's expected cost.",
    )


def campaign_row(plan: CampaignPlan, day: date, version: str) -> pl.DataFrame:
    """One row per campaign: its settings, totals and split check (what the report reads)."""
    summary = {k: v for k, v in plan.summary.items() if k != "actions"}
    row = {
        "observation_date": day,
        "playbook_version": version,
        **summary,
        "actions": json.dumps(plan.summary["actions"]),
        **{f"srm_{k}": v for k, v in plan.srm.as_dict().items()},
    }
    return pl.DataFrame([row])


def stored_plan(
    duckdb: DuckDBResource, spec: DatasetSpec, day: date
) -> tuple[CampaignPlan, dict[str, Any]]:
    """The plan of ``day`` as stored (rows and campaign row), its split check recomputed."""
    campaign = require_rows(duckdb, spec, CAMPAIGNS_TABLE, day, PLAN_TABLE).row(0, named=True)
    rows = require_rows(duckdb, spec, PLAN_TABLE, day, PLAN_TABLE)
    plan = plan_from_rows(
        rows,
        campaign_id=campaign["campaign_id"],
        budget=campaign["budget"],
        control_share=campaign["control_share"],
        cost_basis=campaign["cost_basis"],
        srm_threshold=campaign["srm_threshold"],
    )
    return plan, campaign


def budget_problems(plan: CampaignPlan) -> list[str]:
    """Why a plan must not go out: spend over budget, or a customer targeted at a loss."""
    problems = []
    spend = float(plan.customers["planned_cost"].sum())
    if spend > plan.budget + BUDGET_TOLERANCE:
        problems.append(f"planned spend {spend:,.2f} exceeds the budget {plan.budget:,.2f}")
    selected = plan.customers.filter(pl.col("selected"))
    losing = selected.filter((pl.col("net_value_mid") <= 0) | (pl.col("action_mid") == NO_ACTION))
    if losing.height:
        problems.append(
            f"{losing.height} selected customers have no action or a non-positive expected net "
            f"value (e.g. {', '.join(losing['customer_id'].head(3).to_list())})"
        )
    return problems


def build_campaign(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key(PLAN_TABLE)

    @business_asset(
        spec,
        PLAN_TABLE,
        ["retention_actions"],
        {"duckdb", "python"},
        "Customers to contact, ranked by expected net value within the budget (playbook, or "
        "the run config's what-if), and the randomized holdout assigned by a stable sha256 of "
        f"campaign and customer. Tables {table_name(spec, PLAN_TABLE)} (every scored customer: "
        f"rank, selected, group, planned cost) and {table_name(spec, CAMPAIGNS_TABLE)} (the "
        "campaign's settings, totals and split check).",
        uses_playbook=True,
        check_specs=[
            dg.AssetCheckSpec(
                SRM_CHECK,
                asset=name,
                blocking=True,
                description="Chi-square sample-ratio check of treatment vs control against the "
                "intended control share, on the stored plan: fails when the assignment is off "
                "(p below the playbook's srm_p_threshold), and blocks the experiment design "
                "and the report, whose results could not be read.",
            ),
            dg.AssetCheckSpec(
                BUDGET_CHECK,
                asset=name,
                blocking=True,
                description="The stored plan's planned spend is within the budget and every "
                "selected customer has an action with a positive expected net value.",
            ),
        ],
    )
    def campaign_plan(
        context: dg.AssetExecutionContext, config: CampaignConfig, duckdb: DuckDBResource
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        day = observation_date(spec, context)
        playbook = read_playbook(spec)
        customers = require_rows(duckdb, spec, CUSTOMERS_TABLE, day, "cohorts")
        actions = require_rows(duckdb, spec, ACTIONS_TABLE, day, "retention_actions")
        defaults = playbook.campaign
        planned = plan_campaign(
            customers.join(actions, on=list(KEYS), how="inner"),
            budget=defaults.budget if config.budget is None else config.budget,
            campaign_id=campaign_id_for(spec.name, day, playbook.version),
            control_share=defaults.control_share
            if config.control_share is None
            else config.control_share,
            cost_basis=config.cost_basis,
            srm_threshold=defaults.srm_p_threshold,
        )
        write_rows(
            duckdb,
            spec,
            day,
            {
                PLAN_TABLE: planned.customers,
                CAMPAIGNS_TABLE: campaign_row(planned, day, playbook.version),
            },
        )
        plan, _ = stored_plan(duckdb, spec, day)
        s = plan.summary
        treated = plan.customers.filter(pl.col("group") == TREATMENT)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": plan.customers.height,
                "observation_date": day.isoformat(),
                "campaign_id": plan.campaign_id,
                "budget_source": "run config" if config.budget is not None else "playbook",
                **rounded(
                    {
                        k: s[k]
                        for k in (
                            "budget",
                            "control_share",
                            "eligible",
                            "selected",
                            "treatment",
                            "control",
                            "planned_spend",
                            *(f"expected_{m}_{sc}" for m in HEADLINE_RANGES for sc in SCENARIOS),
                        )
                    }
                ),
                "contacts_by_action": dg.MetadataValue.json(s["actions"]),
                "targeted_customers": metadata.table(
                    treated.sort("rank").select(
                        "rank",
                        "customer_id",
                        "churn_probability",
                        "value",
                        "action_mid",
                        "plan_net_value_mid",
                        "planned_cost",
                        "main_reason",
                    ),
                    max_rows=25,
                    digits=3,
                ),
                "table": table_name(spec, PLAN_TABLE),
            }
        )
        srm = plan.srm
        yield dg.AssetCheckResult(
            check_name=SRM_CHECK,
            passed=srm.passed,
            metadata=rounded(srm.as_dict(), 6),
            description=f"{srm.n_treatment} treated vs {srm.n_control} control for a "
            f"{srm.expected_control_share:.0%} holdout: p = {srm.p_value:.3g}",
        )
        problems = budget_problems(plan)
        yield dg.AssetCheckResult(
            check_name=BUDGET_CHECK,
            passed=not problems,
            metadata={
                "planned_spend": round(s["planned_spend"], 2),
                "budget": s["budget"],
                "problems": "; ".join(problems) or "none",
            },
        )

    return campaign_plan
