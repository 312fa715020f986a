"""A dataset's versioned training-set snapshot, the hand-off to training.

The asset reads the dbt marts, leaves out the features this data cannot support (with the
reason), writes ``<processed_dir>/<dataset>/<version>/`` (parquet + provenance.json, see
:mod:`churn_assets.lib.features_snapshot`) and returns a :class:`TrainingSet`. Provenance records
what was actually loaded (the raw table's own load record, an input of this asset), the dbt
models' checksums and the feature declarations. The reader sits in the ``duckdb`` pool too:
DuckDB refuses a read-only connection while another process writes.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from churn_assets import metadata
from churn_assets.defs.features.project import model_checksums
from churn_assets.defs.sources.raw import LOAD_TABLE
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_dbt import model_chain
from churn_assets.lib.features_registry import FeatureSet, feature_set
from churn_assets.lib.features_snapshot import write_snapshot
from churn_assets.lib.training_set import TrainingSet, unsupported_features
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings


def training_query(spec: DatasetSpec, features: FeatureSet) -> str:
    """Keys and label, then numeric and categorical features (the column order of
    :attr:`TrainingSet.features`); events: every (customer, T) with a matured label."""
    schema = spec.db_schema("features")
    columns = ", ".join(f"f.{name}" for name in features.numeric + features.categorical)
    if spec.kind == "events":
        source = (
            f"from {schema}.fct_training_spine as s join {schema}.fct_features as f "
            "on f.customer_id = s.customer_id and f.observation_date = s.observation_date"
        )
        spine = "s"
    else:
        source, spine = f"from {schema}.fct_snapshot_features as f", "f"
    return f"""
        select cast({spine}.customer_id as varchar) as customer_id,
               cast({spine}.observation_date as date) as observation_date,
               cast({spine}.churned as integer) as churned,
               {columns}
        {source}
        order by observation_date, customer_id
    """


def build_training_set(spec: DatasetSpec) -> dg.AssetsDefinition:
    features = feature_set(spec)
    raw = spec.key(f"raw_{spec.raw_table}")
    marts = ["fct_features", "fct_training_spine"] if spec.kind == "events" else [features.model]

    @dg.asset(
        name=spec.key("training_set"),
        group_name="features",
        owners=[spec.owner],
        kinds={"duckdb", "parquet"},
        deps=[raw, *(spec.key(m) for m in marts)],
        pool="duckdb",
        code_version=features.registry_hash,
        tags={"dataset": spec.name},
        description=f"Versioned training-set snapshot of {spec.name} with provenance: "
        + spec.label_definition(),
    )
    def training_set(
        context: AssetExecutionContext, settings: ChurnSettings, duckdb: DuckDBResource
    ) -> TrainingSet:
        with duckdb.connect(read_only=True) as con:
            frame = con.sql(training_query(spec, features)).pl()
            loads = con.sql(
                f"SELECT file, sha256, rows FROM {spec.db_schema('raw')}.{LOAD_TABLE} ORDER BY file"
            ).pl()
        if frame.is_empty():
            raise dg.Failure(
                f"{spec.name}: no row has a matured label yet, so there is nothing to train on "
                "(the label horizon has not passed for any observation date)"
            )
        excluded = unsupported_features(frame, features.names)
        for name, reason in excluded.items():
            context.log.warning(f"{name} left out of training: {reason}")
        checksums = model_checksums(spec)
        observation_dates = sorted({str(d) for d in frame["observation_date"].unique().to_list()})
        provenance: dict[str, Any] = {
            "raw_files": [
                {"file": r["file"].rsplit("/", 1)[-1], "sha256": r["sha256"], "rows": r["rows"]}
                for r in loads.to_dicts()
            ],
            "dbt_models": {name: checksums.get(name) for name in model_chain(spec)},
            "feature_model": features.model,
            "feature_registry_hash": features.registry_hash,
            "feature_versions": features.versions,
            "excluded_features": excluded,
            "label_definition": spec.label_definition(),
            "label_horizon_days": spec.ev.label_horizon_days if spec.kind == "events" else None,
            "as_of": str(settings.history_as_of(spec.name) or "") or None,
            "observation_dates": observation_dates,
            "row_counts": {
                "rows": frame.height,
                "customers": frame["customer_id"].n_unique(),
                "positives": int(frame["churned"].sum()),
            },
        }
        version, path, written = write_snapshot(
            Path(settings.processed_dir), spec.name, frame, provenance
        )
        context.log.info(f"{spec.name} training set {version} at {path} (new: {written})")
        result = TrainingSet(
            dataset=spec.name,
            version=version,
            path=path,
            numeric_features=tuple(n for n in features.numeric if n not in excluded),
            categorical_features=tuple(n for n in features.categorical if n not in excluded),
            excluded_features=excluded,
        )
        context.add_output_metadata(
            {
                "version": version,
                "snapshot_path": dg.MetadataValue.path(str(path)),
                "newly_written": written,
                "dagster/row_count": frame.height,
                "churn_rate": round(float(frame["churned"].mean() or 0.0), 4),  # type: ignore[arg-type]
                "observation_dates": f"{observation_dates[0]} .. {observation_dates[-1]} "
                f"({len(observation_dates)})",
                "features_used": len(result.features),
                "features_left_out": metadata.table(
                    pl.DataFrame(
                        {"feature": list(excluded), "reason": list(excluded.values())},
                        schema={"feature": pl.String, "reason": pl.String},
                    )
                ),
            }
        )
        return result

    return training_set
