"""Versioned training-set snapshots for the telco and retail datasets.

Each asset reads the dbt marts, writes ``<processed_dir>/<dataset>/<version>/`` (parquet +
provenance.json, see :mod:`churn_assets.lib.features_snapshot`) and returns a
:class:`~churn_assets.lib.training_set.TrainingSet`, the hand-off to training. The readers sit
in the ``duckdb`` pool too: DuckDB refuses a read-only connection while another process writes.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from churn_assets.lib import features_dbt, features_registry
from churn_assets.lib.features_snapshot import write_snapshot
from churn_assets.lib.metadata import sha256_file
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_DATA, get_settings

RETAIL_LABEL = (
    "churned = 1 if the customer, active at T (>= 1 purchase in [T - 90d, T)), makes no purchase "
    "in [T, T + {h}d); 0 otherwise. Labels whose horizon ends after the last event are immature "
    "and excluded. Features at T use only events with event_ts < T."
)
TELCO_LABEL = (
    "churned = 1 if the dataset's Churn column is Yes (left within the last month). One fixed "
    "snapshot: observation_date = var telco_snapshot_date (2019-09-30), no timestamps exist."
)
RETAIL_MODELS = (
    *features_dbt.RETAIL_FEATURE_CHAIN,
    *features_dbt.RETAIL_LABEL_CHAIN,
    "fct_retail_training_spine",
)
TELCO_MODELS = ("stg_telco_customers", "fct_telco_features")


def _raw_checksum(path: Path) -> dict[str, str | None]:
    return {"file": path.name, "sha256": sha256_file(path) if path.exists() else None}


def _materialize(
    context: AssetExecutionContext,
    dataset: str,
    feature_model: str,
    frame: pl.DataFrame,
    raw_files: list[Path],
    models: tuple[str, ...],
    label_definition: str,
) -> TrainingSet:
    settings = get_settings()
    checksums = features_dbt.model_checksums()
    observation_dates = sorted({str(d) for d in frame["observation_date"].unique().to_list()})
    provenance: dict[str, Any] = {
        "raw_files": [_raw_checksum(path) for path in raw_files],
        "dbt_models": {name: checksums.get(name) for name in models},
        "feature_model": feature_model,
        "feature_registry_hash": features_registry.registry_hash(feature_model),
        "feature_versions": features_registry.feature_versions(feature_model),
        "label_definition": label_definition,
        "label_horizon_days": settings.label_horizon_days if dataset == "retail" else None,
        # replays cut the raw events at this date: same raw file, different data
        "retail_as_of": settings.history_as_of() if dataset == "retail" else None,
        "observation_dates": observation_dates,
        "row_counts": {
            "rows": frame.height,
            "customers": frame["customer_id"].n_unique(),
            "positives": int(frame["churned"].sum()),
        },
    }
    version, path, written = write_snapshot(settings.processed_dir, dataset, frame, provenance)
    context.log.info("%s training set %s at %s (new: %s)", dataset, version, path, written)
    training_set = TrainingSet(
        dataset=dataset,
        version=version,
        path=path,
        numeric_features=features_registry.numeric_features(feature_model),
        categorical_features=features_registry.categorical_features(feature_model),
    )
    context.add_output_metadata(
        {
            "version": version,
            "snapshot_path": dg.MetadataValue.path(str(path)),
            "newly_written": written,
            "dagster/row_count": frame.height,
            "churn_rate": float(frame["churned"].cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
            "observation_dates": f"{observation_dates[0]} .. {observation_dates[-1]} "
            f"({len(observation_dates)})",
        }
    )
    return training_set


def _select(feature_model: str, source_sql: str, spine: str = "s") -> str:
    """Keys and label from the ``spine`` alias, then numeric and categorical features from ``f``
    (the column order of :attr:`TrainingSet.features`)."""
    names = features_registry.numeric_features(feature_model) + (
        features_registry.categorical_features(feature_model)
    )
    features = ", ".join(f"f.{name}" for name in names)
    return f"""
        select cast({spine}.customer_id as varchar) as customer_id,
               cast({spine}.observation_date as date) as observation_date,
               cast({spine}.churned as integer) as churned,
               {features}
        {source_sql}
        order by observation_date, customer_id
    """


@dg.asset(
    group_name="features",
    owners=[OWNER_DATA],
    kinds={"duckdb", "parquet"},
    deps=["fct_telco_features"],
    pool="duckdb",
    code_version=features_registry.registry_hash("fct_telco_features"),
)
def telco_training_set(context: AssetExecutionContext, duckdb: DuckDBResource) -> TrainingSet:
    """Telco snapshot: every customer, its own Churn label, static features."""
    sql = _select("fct_telco_features", "from features.fct_telco_features as f", spine="f")
    with duckdb.connect(read_only=True) as con:
        frame = con.sql(sql).pl()
    return _materialize(
        context,
        "telco",
        "fct_telco_features",
        frame,
        [get_settings().telco_csv],
        TELCO_MODELS,
        TELCO_LABEL,
    )


@dg.asset(
    group_name="features",
    owners=[OWNER_DATA],
    kinds={"duckdb", "parquet"},
    deps=["fct_retail_training_spine", "fct_retail_features"],
    pool="duckdb",
    code_version=features_registry.registry_hash("fct_retail_features"),
)
def retail_training_set(context: AssetExecutionContext, duckdb: DuckDBResource) -> TrainingSet:
    """Every (customer, T) with a matured label, joined to the features at exactly T."""
    sql = _select(
        "fct_retail_features",
        "from features.fct_retail_training_spine as s join features.fct_retail_features as f "
        "on f.customer_id = s.customer_id and f.observation_date = s.observation_date",
    )
    with duckdb.connect(read_only=True) as con:
        frame = con.sql(sql).pl()
    return _materialize(
        context,
        "retail",
        "fct_retail_features",
        frame,
        get_settings().retail_source_files(),
        RETAIL_MODELS,
        RETAIL_LABEL.format(h=get_settings().label_horizon_days),
    )
