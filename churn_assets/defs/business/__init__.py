"""business stage: from churn scores to decisions, money and an executive report, per dataset.

customer value ─┐
scores ─────────┴► cohorts ─► retention actions ─► campaign plan (+ holdout, checks)
                                                     ├► experiment design
                                                     ├► backtest (events, matured months)
                                                     ├► KPIs
                                                     └► executive report (HTML, PDF, CSV)

Built for every dataset whose folder holds a ``playbook.yaml``; pure logic lives in
``churn_assets.lib.business``.
"""

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # the type define_asset_job returns; dagster does not export it
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

from churn_assets.defs.business.backtest import build_backtest
from churn_assets.defs.business.campaign import build_campaign
from churn_assets.defs.business.cohorts import build_cohorts
from churn_assets.defs.business.common import GROUP, has_playbook
from churn_assets.defs.business.experiment import build_experiment
from churn_assets.defs.business.kpis import build_kpis
from churn_assets.defs.business.playbook import build_actions
from churn_assets.defs.business.report import build_report_asset
from churn_assets.defs.business.value import build_customer_value
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.partitions import observation_dates


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    if not has_playbook(spec):
        return []
    backtest = [build_backtest(spec)] if spec.kind == "events" else []
    return [
        build_customer_value(spec),
        build_cohorts(spec),
        build_actions(spec),
        build_campaign(spec),
        build_experiment(spec),
        *backtest,
        build_kpis(spec),
        build_report_asset(spec),
    ]


def build_jobs(spec: DatasetSpec) -> "list[AssetJob]":
    """One job per dataset for the whole business group: what the demo launches with a
    budget in the launchpad (a month at a time for an events dataset)."""
    if not has_playbook(spec):
        return []
    return [
        dg.define_asset_job(
            spec.key("business_job"),
            selection=dg.AssetSelection.groups(GROUP) & dg.AssetSelection.tag("dataset", spec.name),
            partitions_def=observation_dates(spec) if spec.kind == "events" else None,
            executor_def=dg.in_process_executor,
            description=f"Value, cohorts, actions, campaign plan, experiment design, "
            f"{'backtest, ' if spec.kind == 'events' else ''}KPIs and the executive report of "
            f"{spec.name}; set the budget under ops.{spec.key('campaign_plan')}.config.",
            tags={"churn/stage": "business", "dataset": spec.name},
        )
    ]
