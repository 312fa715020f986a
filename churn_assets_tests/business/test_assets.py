"""The business assets on the real population: one real retail month (2010-12-01, labels mature,
a full year of data after it for the value check) and the real telco snapshot, with stand-in
scores (see ``real_data``) instead of a trained champion.

What must hold on real data: the holdout is stable across runs and balanced (the sample-ratio
check passes), the budget is never exceeded and nobody is targeted at a loss (the asset's own
check, also with a tight what-if budget), every total of the report reconciles with the
downloadable per-customer rows, and the value model's out-of-time error is reported. The checks
themselves fail on a tampered stored plan.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import polars as pl
import pytest

from churn_assets.defs import business
from churn_assets.defs.business.campaign import budget_problems, stored_plan
from churn_assets.lib.business.campaign import CONTROL, TREATMENT
from churn_assets.lib.business.kpis import KPI_DEFINITIONS
from churn_assets.lib.business.playbook import NO_ACTION, load_playbook, playbook_path
from churn_assets.lib.business.report import fmt_int, fmt_money
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings
from churn_assets_tests.business.real_data import materialize_business, seed_inputs, spec
from churn_assets_tests.conftest import settings_for

pytestmark = pytest.mark.xdist_group("retail_real")

MONTH = date(2010, 12, 1)
NO_PDF = {"ops": {"retail_executive_report": {"config": {"pdf": False}}}}


class World:
    """A project home with the real inputs and one materialization of the business group."""

    def __init__(self, settings: ChurnSettings, instance: dg.DagsterInstance) -> None:
        self.settings = settings
        self.instance = instance
        self.duckdb = DuckDBResource(path=settings.duckdb_path)
        self.first = materialize_business(settings, instance, "retail", MONTH, NO_PDF)

    def sql(self, query: str) -> pl.DataFrame:
        with duckdb.connect(self.settings.duckdb_path, read_only=True) as con:
            return con.sql(query).pl()

    def metadata(self, asset: str) -> dict[str, Any]:
        event = self.instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.asset_materialization is not None
        return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}

    def checks(self, result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
        return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="session")  # once per worker, even when other modules' tests interleave
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = settings_for(tmp_path_factory.mktemp("home"))
    seed_inputs(settings.duckdb_path, MONTH)
    with dg.instance_for_test() as instance:
        yield World(settings, instance)


def test_the_business_group_runs_on_a_real_month_and_its_checks_pass(world: World) -> None:
    assert world.first.success
    checks = world.checks(world.first)
    assert checks["sample_ratio"].passed, checks["sample_ratio"].metadata
    assert checks["within_budget"].passed, checks["within_budget"].metadata
    plan = world.sql("SELECT * FROM retail_business.campaign_plan")
    assert plan.height == world.sql("SELECT * FROM retail_monitoring.scores").height == 2877
    treated, control = (plan.filter(pl.col("group") == g).height for g in (TREATMENT, CONTROL))
    share = control / (treated + control)
    assert treated + control > 200
    assert 0.05 < share < 0.15  # the playbook's 10% holdout on the real selected population


def test_the_holdout_is_stable_across_runs(world: World) -> None:
    query = 'SELECT customer_id, selected, "group" FROM retail_business.campaign_plan ORDER BY 1'
    before = world.sql(query)
    again = materialize_business(
        world.settings, world.instance, "retail", MONTH, only=("campaign_plan",)
    )
    assert again.success
    assert world.sql(query).equals(before)


def test_a_tight_budget_is_never_exceeded_and_nobody_is_targeted_at_a_loss(world: World) -> None:
    tight = {"ops": {"retail_campaign_plan": {"config": {"budget": 400.0}}}}
    result = materialize_business(
        world.settings, world.instance, "retail", MONTH, tight, only=("campaign_plan",)
    )
    assert result.success and world.checks(result)["within_budget"].passed
    plan = world.sql("SELECT * FROM retail_business.campaign_plan")
    selected = plan.filter(pl.col("selected"))
    assert 0 < selected.height < plan.filter(pl.col("net_value_mid") > 0).height
    assert plan["planned_cost"].sum() <= 400.0 + 1e-9
    assert (selected["net_value_mid"] > 0).all()
    assert (selected["action_mid"] != NO_ACTION).all()
    assert world.metadata("retail_campaign_plan")["budget_source"] == "run config"
    # back to the playbook's budget for the tests that follow
    assert materialize_business(
        world.settings, world.instance, "retail", MONTH, only=("campaign_plan",)
    ).success


def test_the_checks_fail_on_a_tampered_stored_plan(world: World, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.duckdb"
    shutil.copy(world.settings.duckdb_path, copy)
    with duckdb.connect(str(copy)) as con:
        # a third of the treated moved to control: the split no longer matches 90/10
        con.execute(
            """UPDATE retail_business.campaign_plan SET "group" = 'control'
            WHERE "group" = 'treatment' AND hash(customer_id) % 3 = 0"""
        )
        con.execute(
            """UPDATE retail_business.campaign_plan SET selected = true, planned_cost = 1e6
            WHERE customer_id = (SELECT min(customer_id) FROM retail_business.campaign_plan
                                 WHERE action_mid = 'no action')"""
        )
    plan, _ = stored_plan(DuckDBResource(path=str(copy)), spec("retail"), MONTH)
    assert not plan.srm.passed and plan.srm.p_value < 1e-6
    problems = budget_problems(plan)
    assert len(problems) == 2 and "exceeds the budget" in problems[0]


def test_report_totals_reconcile_with_the_downloadable_customer_rows(world: World) -> None:
    meta = world.metadata("retail_executive_report")
    rows = pl.read_csv(str(meta["customers_csv_path"]), schema_overrides={"customer_id": pl.String})
    html = Path(str(meta["report_path"])).read_text()
    plan = world.sql("SELECT * FROM retail_business.campaign_plan")
    treated = rows.filter(pl.col("group") == TREATMENT)
    cents = 0.005 * rows.height  # the CSV rounds money to cents
    assert meta["customers_scored"] == rows.height == plan.height
    assert meta["treatment"] == treated.height
    assert meta["control"] == rows.filter(pl.col("group") == CONTROL).height
    assert meta["revenue_at_risk"] == pytest.approx(rows["revenue_at_risk"].sum(), abs=cents)
    assert meta["revenue_at_risk"] == pytest.approx(
        (plan["churn_probability"] * plan["value"]).sum(), abs=0.01
    )
    assert meta["planned_spend"] == pytest.approx(treated["planned_cost"].sum(), abs=cents)
    assert meta["planned_spend"] <= meta["budget"]
    assert meta["total_value"] == pytest.approx(rows["value"].sum(), abs=cents)
    for figure in ("revenue_at_risk", "planned_spend", "total_value"):
        assert fmt_money(meta[figure], "GBP") in html, figure
    assert f"{fmt_int(meta['treatment'])} contacted" in html
    # the month is mature: its own backtest is in the headline, from the backtest table
    backtest = world.sql("SELECT * FROM retail_business.backtest").row(0, named=True)
    assert meta["backtest_churners_reached"] == backtest["churners_reached"]
    assert (
        backtest["churners_reached"]
        == rows.filter(pl.col("group") != "not targeted")
        .join(
            world.sql("SELECT customer_id, churned FROM retail_features.features_monthly"),
            on="customer_id",
        )["churned"]
        .sum()
    )
    # reasons in words on every row of the list, with the signed contribution
    signed = r"^[a-z].* is .*, [+-]\d+\.\d\d$"
    assert rows["reason_1"].str.contains(signed).all()
    no_reason = rows.filter(pl.col("reason_family") == "none")
    assert rows.filter(pl.col("reason_family") != "none")["main_reason"].str.contains(signed).all()
    assert (no_reason["main_reason"] == "no risk-raising driver among the top three").all()


def test_kpis_come_from_realized_labels_and_their_definitions_are_on_the_asset(
    world: World,
) -> None:
    kpis = world.sql("SELECT * FROM retail_business.kpis").row(0, named=True)
    labels = world.sql("SELECT churned FROM retail_features.features_monthly")
    assert kpis["monthly_churn_rate"] == pytest.approx(labels["churned"].mean())
    assert kpis["retention_rate"] == pytest.approx(1 - labels["churned"].mean())
    kpis_asset = next(
        a for a in business.build(spec("retail")) if a.key == dg.AssetKey("retail_business_kpis")
    )
    description = kpis_asset.descriptions_by_key[kpis_asset.key]
    for name, text in KPI_DEFINITIONS.items():
        assert f"**{name.replace('_', ' ')}**: {text}" in description


def test_customer_value_reports_its_out_of_time_error(world: World) -> None:
    meta = world.metadata("retail_customer_value")
    assert str(meta["out_of_time_check"]).startswith("full 365-day horizon")
    check = world.sql("SELECT * FROM retail_business.value_check").row(0, named=True)
    assert meta["check_mae"] == pytest.approx(check["mae"], abs=0.005)
    assert check["n_customers"] == meta["dagster/row_count"]
    assert 0.5 < check["spearman"] < 1 and check["mae"] > 0
    html = Path(str(world.metadata("retail_executive_report")["report_path"])).read_text()
    assert "checked out of time" in html and fmt_money(check["mae"], "GBP") in html


def test_the_snapshot_dataset_gets_its_plan_and_report(world: World) -> None:
    result = materialize_business(
        world.settings,
        world.instance,
        "telco",
        run_config={"ops": {"telco_executive_report": {"config": {"pdf": False}}}},
    )
    assert result.success
    assert {e.check_name for e in result.get_asset_check_evaluations() if e.passed} == {
        "sample_ratio",
        "within_budget",
    }
    design = world.sql("SELECT * FROM telco_business.experiment_design").row(0, named=True)
    assert design["horizon_days"] == 30 and design["readout_date"] == "2019-10-30"
    values = world.sql("SELECT * FROM telco_business.customer_value")
    assert values.height == 7043 and values["expected_remaining_months"].max() <= 12.0
    playbook = load_playbook(playbook_path("telco"), "telco")
    meta = world.metadata("telco_executive_report")
    assert meta["budget"] == playbook.campaign.budget
    assert "snapshot has no outcomes" in Path(str(meta["report_path"])).read_text()
