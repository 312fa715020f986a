"""Backtest of the month's plan once its labels have matured (events datasets).

Had the plan built at T contacted its selected customers, how many of the customers who then
churned within the label horizon, and how much of the revenue they took with them (their
purchase revenue in the horizon before T), would it have reached, against random targeting of
the same size? The ROI is a range from the playbook's uplift assumptions: nothing was sent, so
no uplift is measured here. Months whose labels are immature are reported as such and left out.
"""

import base64
from datetime import date, timedelta

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.business.campaign import PLAN_TABLE
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    read_rows,
    require_rows,
    rounded,
    table_name,
    write_rows,
)
from churn_assets.defs.monitoring.common import observation_date, read_at
from churn_assets.lib.business.backtest import (
    NO_MEASURED_UPLIFT,
    BacktestResult,
    backtest_plan,
    backtest_table,
)
from churn_assets.lib.business.report import backtest_png
from churn_assets.lib.business.value import PURCHASES_SQL, realized_revenue
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings

BACKTEST_TABLE = "backtest"


def stored_backtests(duckdb: DuckDBResource, spec: DatasetSpec, day: date) -> list[BacktestResult]:
    """Every stored backtest of a month up to ``day``, oldest first."""
    rows = read_rows(duckdb, spec, BACKTEST_TABLE, day, until=True)
    return [BacktestResult.from_dict(r) for r in rows.iter_rows(named=True)]


def build_backtest(spec: DatasetSpec) -> dg.AssetsDefinition:
    horizon = spec.ev.label_horizon_days
    raw = f"{spec.db_schema('raw')}.{spec.raw_table}"

    @business_asset(
        spec,
        "campaign_backtest",
        [PLAN_TABLE, "features_monthly", f"raw_{spec.raw_table}"],
        {"duckdb", "python"},
        f"Once a month's labels have matured ({horizon} days after T): the actual churners and "
        "the revenue they took with them that the month's plan would have reached, against "
        "random targeting of the same size (expected and 5-95% range), and the ROI range from "
        f"the playbook's uplift assumptions (no uplift is measured). Table "
        f"{table_name(spec, BACKTEST_TABLE)}.",
        uses_playbook=True,
    )
    def campaign_backtest(
        context: dg.AssetExecutionContext, settings: ChurnSettings, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        labels = read_at(duckdb, spec.scoring_table, day).select(
            "customer_id", "churned", "is_mature"
        )
        if labels.is_empty() or not labels["is_mature"].all():
            context.log.info(f"{day}: labels immature until {day + timedelta(days=horizon)}")
            return dg.MaterializeResult(
                metadata={
                    "observation_date": day.isoformat(),
                    "status": "immature",
                    "matures_on": (day + timedelta(days=horizon)).isoformat(),
                }
            )
        playbook = read_playbook(spec)
        plan = require_rows(duckdb, spec, PLAN_TABLE, day, PLAN_TABLE)
        with duckdb.connect(read_only=True) as con:
            window = con.sql(
                PURCHASES_SQL.format(table=raw) + " AND event_ts >= ? AND event_ts < ?",
                params=[day - timedelta(days=horizon), day],
            ).pl()
        trailing = realized_revenue(window, day - timedelta(days=horizon), day).rename(
            {"realized_revenue": "trailing_revenue"}
        )
        result = backtest_plan(
            plan,
            labels.join(trailing, on="customer_id", how="left"),
            playbook,
            observation_date=day,
            horizon_days=horizon,
            seed=settings.seed,
        )
        row = {k: v for k, v in result.as_dict().items() if k != "note"}
        write_rows(
            duckdb, spec, day, {BACKTEST_TABLE: pl.DataFrame([row | {"observation_date": day}])}
        )
        history = backtest_table(stored_backtests(duckdb, spec, day))
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": 1,
                "observation_date": day.isoformat(),
                "status": "mature",
                **rounded(row | {"observation_date": day.isoformat()}, 3),
                "note": dg.MetadataValue.md(NO_MEASURED_UPLIFT),
                "months_backtested": metadata.table(
                    history.select(
                        "observation_date",
                        "targeted",
                        "churners_reached",
                        "random_churners_expected",
                        "churner_lift",
                        "revenue_lost_reached",
                        "random_revenue_expected",
                        "roi_low",
                        "roi_mid",
                        "roi_high",
                    ),
                    digits=3,
                ),
                "plots": metadata.plots({"backtest.png": base64.b64decode(backtest_png(history))}),
                "table": table_name(spec, BACKTEST_TABLE),
            }
        )

    return campaign_backtest
