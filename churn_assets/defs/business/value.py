"""Customer value at the observation date: what each customer is expected to bring in.

Events: BG/NBD × Gamma-Gamma fitted on the purchases before T in the raw events, with the
out-of-time check against what the customers actually spent after T (partial windows said as
such). Snapshot: monthly charge × expected remaining tenure from a constant hazard per group.
The horizon and, for a snapshot, the columns come from the playbook's ``value`` section.
"""

from datetime import date
from typing import Any

import dagster as dg
import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from churn_assets import metadata
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    rounded,
    table_name,
    write_rows,
)
from churn_assets.defs.monitoring.common import features_input, observation_date
from churn_assets.lib.business.playbook import Playbook, ValueSettings
from churn_assets.lib.business.value import (
    PURCHASES_SQL,
    events_customer_value,
    events_value_method,
    snapshot_customer_value,
    snapshot_value_method,
)
from churn_assets.lib.business.value_check import ValueCheck, value_out_of_time_check
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.metadata import figure_png
from churn_assets.resources import DuckDBResource

VALUES_TABLE = "customer_value"
MODEL_TABLE = "value_model"
CHECK_TABLE = "value_check"


def read_purchases(duckdb: DuckDBResource, spec: DatasetSpec) -> pl.DataFrame:
    """Every kept purchase of the raw events table (the value model and its check need the
    history before T and the revenue after it)."""
    with duckdb.connect(read_only=True) as con:
        return con.sql(PURCHASES_SQL.format(table=f"{spec.db_schema('raw')}.{spec.raw_table}")).pl()


def check_plot(check: ValueCheck, currency: str) -> bytes:
    """Mean predicted vs realized revenue per predicted-value decile."""
    deciles = check.calibration
    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = deciles["decile"].to_numpy()
    ax.bar(x - 0.2, deciles["mean_predicted"].to_numpy(), width=0.4, label="predicted")
    ax.bar(x + 0.2, deciles["mean_realized"].to_numpy(), width=0.4, label="realized")
    ax.set_xticks(x)
    ax.set_xlabel("predicted value decile (10 = highest)")
    ax.set_ylabel(f"mean revenue per customer ({currency})")
    ax.set_title(f"Out-of-time check, {check.covered_days} days after {check.observation_date}")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _events_value(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    duckdb: DuckDBResource,
    playbook: Playbook,
    day: date,
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame], dict[str, Any]]:
    settings: ValueSettings = playbook.value
    purchases = read_purchases(duckdb, spec)
    values, model = events_customer_value(
        purchases,
        day,
        horizon_days=settings.horizon_days,
        annual_discount_rate=settings.annual_discount_rate,
    )
    method = events_value_method(
        model, settings.horizon_days, settings.annual_discount_rate, playbook.currency
    )
    extra = {MODEL_TABLE: pl.DataFrame([{"observation_date": day, "method": method}])}
    meta: dict[str, Any] = {
        "method": dg.MetadataValue.md(method),
        "fitted": dg.MetadataValue.json(rounded(model.as_dict(), 6)),
    }
    try:
        check = value_out_of_time_check(purchases, day, horizon_days=settings.horizon_days)
    except ValueError as error:  # T at the end of the data: nothing after it to compare with
        context.log.info(f"{day}: no out-of-time check ({error})")
        meta["out_of_time_check"] = "not possible: the data ends at the observation date"
        return values, extra, meta
    extra[CHECK_TABLE] = pl.DataFrame([check.as_dict()]).with_columns(
        pl.lit(day).alias("observation_date")
    )
    meta |= {
        "out_of_time_check": check.window_label,
        "check_customers": check.n_customers,
        **{
            f"check_{k}": v
            for k, v in rounded(
                {
                    "mae": check.mae,
                    "rmse": check.rmse,
                    "spearman": check.spearman,
                    "total_ratio": check.total_ratio,
                    "naive_mae": check.naive_mae,
                    "naive_spearman": check.naive_spearman,
                },
                3,
            ).items()
        },
        "check_by_decile": metadata.table(check.calibration, digits=2),
        "plots": metadata.plots({"out_of_time_check.png": check_plot(check, playbook.currency)}),
    }
    return values, extra, meta


def _snapshot_value(
    spec: DatasetSpec, duckdb: DuckDBResource, playbook: Playbook, day: date
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame], dict[str, Any]]:
    settings = playbook.value
    columns = (settings.charge_column, settings.tenure_column, settings.group_column)
    if not all(columns):
        raise dg.Failure(
            f"{spec.name}'s playbook must name value.charge_column, value.tenure_column and "
            "value.group_column (columns of the snapshot's feature table)"
        )
    with duckdb.connect(read_only=True) as con:
        frame = con.sql(
            f"SELECT customer_id, {', '.join(columns)}, churned FROM {spec.scoring_table} "
            "WHERE observation_date = ?",
            params=[day],
        ).pl()
    values, hazards = snapshot_customer_value(
        frame,
        charge_column=settings.charge_column,
        tenure_column=settings.tenure_column,
        group_column=settings.group_column,
        horizon_months=settings.horizon_months,
    )
    method = snapshot_value_method(hazards, settings.group_column, settings.horizon_months)
    extra = {MODEL_TABLE: pl.DataFrame([{"observation_date": day, "method": method}])}
    meta = {
        "method": dg.MetadataValue.md(method),
        "hazards": metadata.table(hazards, digits=4),
    }
    return values.with_columns(observation_date=pl.lit(day, dtype=pl.Date)), extra, meta


def build_customer_value(spec: DatasetSpec) -> dg.AssetsDefinition:
    events = spec.kind == "events"
    source = f"raw_{spec.raw_table}" if events else features_input(spec)
    method = (
        "BG/NBD × Gamma-Gamma fitted on the purchases before T (raw events), with an "
        "out-of-time check against realized revenue after T"
        if events
        else "monthly charge × expected remaining tenure from a constant churn hazard per group"
    )

    @business_asset(
        spec,
        VALUES_TABLE,
        [source],
        {"duckdb", "python"},
        f"Expected revenue of every customer over the playbook's value horizon, before margin: "
        f"{method}. Tables {table_name(spec, VALUES_TABLE)} (per customer), "
        f"{table_name(spec, MODEL_TABLE)} (the method in words)"
        + (f" and {table_name(spec, CHECK_TABLE)} (the check's figures)." if events else "."),
        uses_playbook=True,
    )
    def customer_value(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        playbook = read_playbook(spec)
        if events:
            values, extra, meta = _events_value(context, spec, duckdb, playbook, day)
        else:
            values, extra, meta = _snapshot_value(spec, duckdb, playbook, day)
        write_rows(duckdb, spec, day, {VALUES_TABLE: values, **extra})
        amounts = values["value"].to_numpy()
        quantiles = np.quantile(amounts, [0.1, 0.5, 0.9])
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": values.height,
                "observation_date": day.isoformat(),
                "currency": playbook.currency,
                "horizon_months": playbook.value.horizon_months,
                "total_value": round(float(amounts.sum()), 2),
                "value_p10": round(float(quantiles[0]), 2),
                "median_value": round(float(quantiles[1]), 2),
                "value_p90": round(float(quantiles[2]), 2),
                "table": table_name(spec, VALUES_TABLE),
                **meta,
            }
        )

    return customer_value
