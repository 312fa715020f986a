"""What every monitoring asset of a dataset shares: its partitions, decoration and inputs."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.modeling import feature_frame
from churn_assets.lib.training_set import DATA_FILE
from churn_assets.partitions import observation_dates
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_ML

GROUP = "monitoring"
SCORES_TABLE = "scores"
SINGLE_RUN = dg.BackfillPolicy.single_run()

# A month is scored once a month; two missed months means the monitoring loop is broken.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=62), warn_window=timedelta(days=35)
)


def monitoring_asset(
    spec: DatasetSpec,
    name: str,
    deps: Sequence[str],
    kinds: set[str],
    description: str,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
) -> Any:
    """The decorator of a monitoring asset: partitioned by observation date for an events
    dataset (one snapshot otherwise), the ``duckdb`` pool, the ML owner, the dataset's tags.

    A backfill of many observation dates is one run (``BackfillPolicy.single_run``): the
    champion, its reference and the tables are read once, and each date still gets its own
    materialization and metadata (:func:`record`)."""
    events = spec.kind == "events"
    return dg.asset(
        name=spec.key(name),
        partitions_def=observation_dates(spec) if events else None,
        deps=[spec.key(d) for d in deps],
        group_name=GROUP,
        kinds=kinds,
        owners=[OWNER_ML],
        pool="duckdb",
        tags={"layer": "monitoring", "dataset": spec.name},
        freshness_policy=MONTHLY_FRESHNESS if events else None,
        backfill_policy=SINGLE_RUN if events else None,
        check_specs=list(check_specs),
        description=description,
    )


def observation_date(spec: DatasetSpec, context: dg.AssetExecutionContext) -> date:
    """The partition's observation date, or the snapshot's fixed date."""
    if spec.kind == "events":
        return date.fromisoformat(context.partition_key)
    return spec.snap.snapshot_date


def observation_dates_of_run(spec: DatasetSpec, context: dg.AssetExecutionContext) -> list[date]:
    """The observation dates this run materializes, oldest first: one partition, every date of
    a backfill's range, or the snapshot's fixed date."""
    if spec.kind == "events":
        return sorted(date.fromisoformat(key) for key in context.partition_keys)
    return [spec.snap.snapshot_date]


def record(
    spec: DatasetSpec, context: dg.AssetExecutionContext, day: date, metadata: dict[str, Any]
) -> None:
    """The metadata of one observation date's materialization (in a range, each its own)."""
    context.add_asset_metadata(
        metadata, partition_key=day.isoformat() if spec.kind == "events" else None
    )


def features_input(spec: DatasetSpec) -> str:
    return "features_monthly" if spec.kind == "events" else "fct_snapshot_features"


def read_at(duckdb: DuckDBResource, table: str, day: date) -> pl.DataFrame:
    return read_dates(duckdb, table, [day])[day]


def read_dates(
    duckdb: DuckDBResource, table: str, days: Sequence[date]
) -> dict[date, pl.DataFrame]:
    """The rows of each observation date (empty frames for dates without rows), in one query."""
    with duckdb.connect(read_only=True) as con:
        rows = con.sql(
            f"SELECT * FROM {table} WHERE observation_date IN ({', '.join('?' * len(days))})",
            params=list(days),
        ).pl()
    parts = rows.partition_by("observation_date", as_dict=True, include_key=True)
    return {day: parts.get((day,), rows.clear()) for day in days}


@dataclass(frozen=True)
class Reference:
    """The training set a model version was fitted on, and the model's scores on it: the
    reference of drift and of risk deciles."""

    frame: pl.DataFrame
    scores: np.ndarray


_REFERENCES: dict[tuple[str, str, str], Reference] = {}


def reference(model: registry.Champion) -> Reference:
    """Read (path recorded as an MLflow run tag) and score once per process and version: a
    backfill of many months reuses it."""
    key = (model.dataset, model.version, str(model.training_set_path))
    if key not in _REFERENCES:
        frame = pl.read_parquet(model.training_set_path / DATA_FILE)
        x = feature_frame(frame, tuple(model.numeric_features), tuple(model.categorical_features))
        _REFERENCES[key] = Reference(frame, model.model.predict_proba(x)[:, 1])
    return _REFERENCES[key]
