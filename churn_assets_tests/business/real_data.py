"""The bundled real data, read through the contract exactly as the raw assets read it, and one
observation month built from it: features, labels and stand-in scores in the shapes of
``<ds>_features.features_monthly`` / ``fct_snapshot_features`` and ``<ds>_monitoring.scores``.

The scores come from a transparent logistic stand-in (recency, orders and spend for events;
contract, tenure and charge for the snapshot) instead of a trained champion, so business tests
run on the real population in seconds; its drivers are exact linear SHAP values (each feature's
coefficient × its deviation from the mean), the form the champion's drivers take.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import dagster as dg
import duckdb
import numpy as np
import polars as pl

from churn_assets.defs import business
from churn_assets.lib.business.value import PURCHASES_SQL
from churn_assets.lib.contracts import LABEL, read_file
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.duckdb_io import replace_table
from churn_assets.partitions import partitions_name
from churn_assets.resources import build_resources
from churn_assets.settings import ChurnSettings

N_DRIVERS = 3


@cache
def spec(name: str) -> DatasetSpec:
    return load_declarations()[name]


@cache
def raw_table(name: str) -> pl.DataFrame:
    """The bundled file of a declared dataset in its raw table's shape (through the contract)."""
    declared = spec(name)
    return pl.concat([read_file(declared, path) for path in declared.source_files()])


def retail_purchases(until: date | None = None) -> pl.DataFrame:
    """The purchases the value model reads (:data:`PURCHASES_SQL`), before ``until``."""
    with duckdb.connect() as con:
        con.register("events", raw_table("retail").to_arrow())
        frame = con.sql(PURCHASES_SQL.format(table="events")).pl()
    if until is not None:
        frame = frame.filter(pl.col("event_ts") < datetime(until.year, until.month, until.day))
    return frame


def _ts(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)


def _scores(
    frame: pl.DataFrame, day: date, intercept: float, terms: dict[str, tuple[float, pl.Expr]]
) -> pl.DataFrame:
    """Logistic stand-in: p = σ(intercept + Σ coef × x); drivers = the three largest |coef × (x
    - mean)|, sorted by magnitude, with the raw value as text."""
    x = frame.select(**{name: expr for name, (_, expr) in terms.items()})
    contributions = np.column_stack(
        [coef * (x[n].to_numpy() - x[n].mean()) for n, (coef, _) in terms.items()]
    )
    logit = intercept + sum(coef * x[n].to_numpy() for n, (coef, _) in terms.items())
    p = 1 / (1 + np.exp(-logit))
    order = np.argsort(-np.abs(contributions), axis=1)[:, :N_DRIVERS]
    names = np.array(list(terms))
    raw = frame.select(list(terms)).to_numpy()
    rank = np.argsort(np.argsort(p, kind="mergesort"), kind="mergesort")
    columns: dict[str, object] = {
        "observation_date": [day] * frame.height,
        "customer_id": frame["customer_id"],
        "churn_probability": p,
        "risk_decile": rank * 10 // frame.height + 1,
    }
    rows = np.arange(frame.height)
    for i in range(N_DRIVERS):
        chosen = order[:, i]
        columns[f"driver_{i + 1}"] = names[chosen].tolist()
        columns[f"driver_{i + 1}_value"] = [str(v) for v in raw[rows, chosen]]
        columns[f"driver_{i + 1}_shap"] = contributions[rows, chosen]
    return pl.DataFrame(columns).with_columns(
        pl.col("risk_decile").cast(pl.Int32),
        model_name=pl.lit("stand-in"),
        model_version=pl.lit("0"),
        scored_at=pl.lit(datetime(2024, 1, 1)),
    )


def retail_month(day: date) -> dict[str, pl.DataFrame]:
    """Customers active at T (a purchase in the 90 days before), three of their real features
    at T, their label (no purchase in the 90 days from T; mature when the data covers them)
    and stand-in scores."""
    purchases = retail_purchases()
    horizon = timedelta(days=spec("retail").ev.label_horizon_days)
    start, t, end = _ts(day - horizon), _ts(day), _ts(day + horizon)
    history = purchases.filter(pl.col("event_ts") < t)
    window = history.filter(pl.col("event_ts") >= start)
    after = purchases.filter((pl.col("event_ts") >= t) & (pl.col("event_ts") < end))
    features = (
        history.group_by("customer_id")
        .agg(last=pl.col("event_ts").max())
        .join(
            window.group_by("customer_id").agg(
                orders_90d=pl.col("event_ts").n_unique(),  # an order is one timestamp
                revenue_90d=pl.col("amount").sum(),
            ),
            on="customer_id",
            how="inner",
        )
        .with_columns(
            observation_date=pl.lit(day),
            recency_days=(pl.lit(t) - pl.col("last")).dt.total_days().cast(pl.Int64),
            churned=(~pl.col("customer_id").is_in(after["customer_id"].unique())).cast(pl.Int8),
            is_mature=pl.lit(purchases["event_ts"].max() >= end),
        )
        .drop("last")
        .sort("customer_id")
    )
    scores = _scores(
        features,
        day,
        -0.2,
        {
            "recency_days": (0.03, pl.col("recency_days").cast(pl.Float64)),
            "orders_90d": (-0.35, pl.col("orders_90d").cast(pl.Float64)),
            "revenue_90d": (-0.0004, pl.col("revenue_90d")),
        },
    )
    return {"features": features, "scores": scores}


def telco_snapshot() -> dict[str, pl.DataFrame]:
    """Every customer of the bundled snapshot with the columns the value model and the stand-in
    need (the contract's names; contract_months as the feature model derives it)."""
    declared = spec("telco")
    features = raw_table("telco").select(
        "customer_id",
        "tenure",
        "contract",
        "monthly_charges",
        observation_date=pl.lit(declared.snap.snapshot_date),
        contract_months=pl.col("contract")
        .replace_strict({"Two year": 24, "One year": 12}, default=1)
        .cast(pl.Int64),
        churned=pl.col(LABEL).cast(pl.Int8),
    )
    scores = _scores(
        features,
        declared.snap.snapshot_date,
        0.3,
        {
            "contract_months": (-0.12, pl.col("contract_months").cast(pl.Float64)),
            "tenure": (-0.04, pl.col("tenure").cast(pl.Float64)),
            "monthly_charges": (0.015, pl.col("monthly_charges")),
        },
    )
    return {"features": features, "scores": scores}


def seed_inputs(duckdb_path: str, month: date) -> None:
    """Write what the business assets read (raw retail events, one month of retail features and
    stand-in scores, telco's snapshot features and stand-in scores) into a project's DuckDB."""
    retail, telco = retail_month(month), telco_snapshot()
    tables = {
        ("retail_raw", "events"): raw_table("retail"),
        ("retail_features", "features_monthly"): retail["features"],
        ("retail_monitoring", "scores"): retail["scores"],
        ("telco_features", "fct_snapshot_features"): telco["features"],
        ("telco_monitoring", "scores"): telco["scores"],
    }
    with duckdb.connect(duckdb_path) as con:
        for (schema, table), frame in tables.items():
            replace_table(con, schema, table, frame)


def materialize_business(
    settings: ChurnSettings,
    instance: dg.DagsterInstance,
    dataset: str,
    partition: date | None = None,
    run_config: dict[str, Any] | None = None,
    only: tuple[str, ...] = (),
) -> dg.ExecuteInProcessResult:
    """Materialize a dataset's business assets (``only``: these names) for one partition, the
    way a run from the UI does (the real asset definitions and resources)."""
    declared = spec(dataset)
    assets = [
        a for a in business.build(declared) if not only or a.key.path[-1] in map(declared.key, only)
    ]
    key = None
    if partition is not None:
        key = partition.isoformat()
        instance.add_dynamic_partitions(partitions_name(declared), [key])
    return dg.materialize(
        assets,
        instance=instance,
        partition_key=key,
        resources=build_resources(settings),
        run_config=run_config or {},
        raise_on_error=False,
    )
