"""Retention playbook applied: the best action per customer under each scenario.

Per customer and scenario (low / mid / high assumptions), the playbook action for their main
reason family with the highest expected net value p × uplift × value × margin − cost, or "no
action" when none pays. The playbook file (versioned, edited by the business) is the asset's
code version: editing it marks this asset and everything downstream stale in the UI.
"""

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.business.cohorts import CUSTOMERS_TABLE
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    require_rows,
    table_name,
    write_rows,
)
from churn_assets.defs.monitoring.common import observation_date
from churn_assets.lib.business.playbook import (
    NO_ACTION,
    SCENARIOS,
    playbook_path,
    recommend_actions,
)
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource
from churn_assets.settings import REPO_ROOT

ACTIONS_TABLE = "actions"
KEYS = ("observation_date", "customer_id")


def action_counts(recommendations: pl.DataFrame) -> pl.DataFrame:
    """Customers per action under each scenario (how sensitive the choice is to assumptions)."""
    counts = [
        recommendations.group_by(pl.col(f"action_{s}").alias("action")).agg(pl.len().alias(s))
        for s in SCENARIOS
    ]
    out = counts[0]
    for frame in counts[1:]:
        out = out.join(frame, on="action", how="full", coalesce=True)
    return out.fill_null(0).sort("action")


def build_actions(spec: DatasetSpec) -> dg.AssetsDefinition:
    path = playbook_path(spec.name)

    @business_asset(
        spec,
        "retention_actions",
        ["cohorts"],
        {"duckdb", "yaml"},
        "The playbook's best action per customer under the low, mid and high assumptions (the "
        "mid one is executed) with its expected net value = p(churn) × uplift × value × margin "
        "− (cost per contact + acceptance × offer cost); 'no action' when none is positive. "
        f"Playbook: {path.relative_to(REPO_ROOT)}. Table {table_name(spec, ACTIONS_TABLE)}.",
        uses_playbook=True,
        metadata={"playbook": dg.MetadataValue.path(str(path))},
    )
    def retention_actions(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        playbook = read_playbook(spec)
        customers = require_rows(duckdb, spec, CUSTOMERS_TABLE, day, "cohorts")
        recommendations = recommend_actions(customers, playbook)
        added = [c for c in recommendations.columns if c not in customers.columns]
        write_rows(duckdb, spec, day, {ACTIONS_TABLE: recommendations.select(*KEYS, *added)})
        positive = recommendations.filter(pl.col("action_mid") != NO_ACTION)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": recommendations.height,
                "observation_date": day.isoformat(),
                "playbook_version": playbook.version,
                "playbook_owner": playbook.owner,
                "margin_rate": playbook.margin_rate,
                "customers_with_an_action": positive.height,
                # Before the budget: what contacting every customer with an action would net.
                "net_value_mid_if_all_contacted": round(float(positive["net_value_mid"].sum()), 2),
                "actions_by_scenario": metadata.table(action_counts(recommendations)),
                "assumptions": metadata.table(playbook.table(), digits=3),
                "table": table_name(spec, ACTIONS_TABLE),
            }
        )

    return retention_actions
