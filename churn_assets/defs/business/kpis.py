"""Business KPIs per observation date, each defined once (``KPI_DEFINITIONS``, shown on the asset).

Churn rate, retention and top-decile capture come from realized labels and stay empty until
every label of the month has matured; revenue at risk and the campaign's expected saved revenue
and net value (ranges) come from the stored plan.
"""

import base64

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.business.campaign import PLAN_TABLE, stored_plan
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    read_rows,
    rounded,
    table_name,
    write_rows,
)
from churn_assets.defs.monitoring.common import observation_date
from churn_assets.lib.business.kpis import KPI_DEFINITIONS, campaign_kpis, monthly_kpis
from churn_assets.lib.business.report import kpi_trend_png
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource

KPIS_TABLE = "kpis"


def definitions_markdown() -> str:
    return "\n".join(f"- **{k.replace('_', ' ')}**: {v}" for k, v in KPI_DEFINITIONS.items())


def build_kpis(spec: DatasetSpec) -> dg.AssetsDefinition:
    @business_asset(
        spec,
        "business_kpis",
        [PLAN_TABLE],
        {"duckdb", "python"},
        "Monthly churn rate, retention, revenue at risk, top-decile capture (realized labels, "
        "once mature) and the campaign's expected saved revenue and net value (low / mid / "
        f"high), with the trend of every month up to T. Table {table_name(spec, KPIS_TABLE)}."
        "\n\n**Definitions** (the report shows the same text)\n\n" + definitions_markdown(),
    )
    def business_kpis(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        plan, _ = stored_plan(duckdb, spec, day)
        row = monthly_kpis(plan.customers).with_columns(
            **{k: pl.lit(v) for k, v in campaign_kpis(plan.summary).items()}
        )
        write_rows(duckdb, spec, day, {KPIS_TABLE: row})
        trend = read_rows(duckdb, spec, KPIS_TABLE, day, until=True)
        figures = row.row(0, named=True)
        plots = (
            {
                "plots": metadata.plots(
                    {
                        "kpi_trend.png": base64.b64decode(
                            kpi_trend_png(trend, read_playbook(spec).currency)
                        )
                    }
                )
            }
            if trend.height > 1
            else {}
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": trend.height,
                **rounded({k: v for k, v in figures.items() if k != "observation_date"}),
                "observation_date": day.isoformat(),
                "trend": metadata.table(trend, digits=4),
                **plots,
                "table": table_name(spec, KPIS_TABLE),
            }
        )

    return business_kpis
