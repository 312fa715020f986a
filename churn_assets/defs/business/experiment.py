"""Experiment design of the planned campaign: can its holdout measure the assumed uplift?

statsmodels' power analysis of two proportions on the stored plan: customers per arm needed to
detect the playbook's mid uplift at the playbook's α and power, the minimal detectable effect of
the actual arms, the read-out date, and a verdict that says plainly when the campaign is too
small to learn anything.
"""

import dagster as dg
import polars as pl

from churn_assets.defs.business.campaign import PLAN_TABLE, stored_plan
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    rounded,
    table_name,
    write_rows,
)
from churn_assets.defs.monitoring.common import observation_date
from churn_assets.lib.business.planning import experiment_for_plan
from churn_assets.lib.business.playbook import Playbook
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource

DESIGN_TABLE = "experiment_design"


def readout_days(spec: DatasetSpec, playbook: Playbook) -> int:
    """When the effect on churn can be read: the playbook's read-out, else the label horizon."""
    if playbook.campaign.readout_days:
        return round(playbook.campaign.readout_days)
    if spec.kind == "events":
        return spec.ev.label_horizon_days
    raise dg.Failure(
        f"{spec.name}'s playbook must set campaign.readout_days (a snapshot has no horizon)"
    )


def build_experiment(spec: DatasetSpec) -> dg.AssetsDefinition:
    @business_asset(
        spec,
        DESIGN_TABLE,
        [PLAN_TABLE],
        {"duckdb", "statsmodels"},
        "Power analysis of the campaign's holdout (statsmodels, two proportions, two-sided): "
        "customers per arm to detect the playbook's assumed uplift at its α and power, the "
        "minimal detectable effect of the actual arms, the read-out date and a verdict "
        f"(adequate / underpowered / too small to learn anything). Table "
        f"{table_name(spec, DESIGN_TABLE)}.",
        uses_playbook=True,
    )
    def experiment_design(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        playbook = read_playbook(spec)
        plan, campaign = stored_plan(duckdb, spec, day)
        design = experiment_for_plan(
            plan, playbook, horizon_days=readout_days(spec, playbook), start=day
        )
        row = pl.DataFrame([design.as_dict()]).with_columns(
            observation_date=pl.lit(day), campaign_id=pl.lit(plan.campaign_id)
        )
        write_rows(duckdb, spec, day, {DESIGN_TABLE: row})
        figures = rounded(
            {
                k: getattr(design, k)
                for k in (
                    "n_treatment",
                    "n_control",
                    "control_churn_rate",
                    "assumed_relative_uplift",
                    "assumed_treated_churn_rate",
                    "required_per_arm",
                    "required_control",
                    "achieved_power",
                    "mde_absolute",
                    "mde_relative",
                    "alpha",
                    "power",
                )
            }
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": 1,
                "observation_date": day.isoformat(),
                "campaign_id": campaign["campaign_id"],
                "verdict": design.verdict,
                "explanation": dg.MetadataValue.md(design.explanation),
                "readout_date": design.readout_date.isoformat() if design.readout_date else None,
                **figures,
                "table": table_name(spec, DESIGN_TABLE),
            }
        )

    return experiment_design
