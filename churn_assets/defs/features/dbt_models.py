"""A dataset's dbt feature models (staging → daily tiles → marts) as Dagster assets.

One ``@dbt_assets`` op per dataset runs ``dbt build`` over its selected models with its vars, so
every dbt test runs right after its model and reports as a Dagster asset check. The op writes the
DuckDB file, hence the ``duckdb`` pool and the file lock. The observation dates of an events
dataset come from its raw table's first and last event (the same calendar the raw asset made
into partitions), read just before dbt runs.

With ``CHURN_ENGINE=spark`` the same models run on Spark (dbt target ``spark``): the validated raw
table goes to the lake as parquet first, and the marts come back from it into the DuckDB tables
the DuckDB engine would have written, so the assets downstream never know which engine ran.
"""

import hashlib
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from churn_assets.defs.features import project
from churn_assets.lib.datasets import DatasetSpec, observation_calendar
from churn_assets.lib.features_dbt import dbt_vars, vars_arg
from churn_assets.lib.features_registry import FeatureSet, feature_set
from churn_assets.lib.spark_lake import spark_build
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings

GROUP = "features"


class DatasetTranslator(DagsterDbtTranslator):
    """Asset keys ``<dataset>_<model>`` (sources map through ``meta.dagster.asset_key``), group
    ``features``, the dataset's owner, and for the feature model a code version and catalogue
    derived from the registry, so a changed feature definition shows the asset as stale."""

    def __init__(self, spec: DatasetSpec) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self.spec = spec
        self.features: FeatureSet = feature_set(spec)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(self.spec.key(dbt_resource_props["name"]))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [self.spec.owner]

    def get_tags(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, str]:
        return {**super().get_tags(dbt_resource_props), "dataset": self.spec.name}

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        sql_version = super().get_code_version(dbt_resource_props)
        if dbt_resource_props["name"] != self.features.model or sql_version is None:
            return sql_version
        combined = f"{sql_version}:{self.features.registry_hash}"
        return hashlib.sha256(combined.encode()).hexdigest()[:16]

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        if dbt_resource_props["name"] == self.features.model:
            metadata["feature_catalogue"] = dg.MetadataValue.md(self.features.catalogue_markdown())
            metadata["feature_registry_hash"] = self.features.registry_hash
            metadata["n_features"] = len(self.features.features)
        return metadata


def observation_bounds(
    spec: DatasetSpec, duckdb: DuckDBResource, known_until: date | None
) -> tuple[date, date] | None:
    """First and last observation date the raw events support (None for a snapshot): the same
    calendar the raw asset made into partitions."""
    if spec.kind != "events":
        return None
    with duckdb.connect(read_only=True) as con:
        row = con.execute(
            f"SELECT min(event_ts), max(event_ts) FROM {spec.db_schema('raw')}.events"
        ).fetchone()
    assert row is not None and row[0] is not None, f"{spec.db_schema('raw')}.events is empty"
    dates, _ = observation_calendar(spec, row[0], row[1], known_until)
    if not dates:
        raise dg.Failure(
            f"{spec.name}: the events ({row[0]} .. {row[1]}) cover no observation date: the "
            f"longest window ({max(spec.ev.windows)} days) needs more history"
        )
    return dates[0], dates[-1]


def build_dbt_assets(spec: DatasetSpec) -> dg.AssetsDefinition:
    """The ``@dbt_assets`` definition of one dataset, from its freshly prepared manifest."""
    dbt_project = project.ensure_manifest(spec)

    @dbt_assets(
        manifest=project.read_manifest(spec),
        project=dbt_project,
        dagster_dbt_translator=DatasetTranslator(spec),
        name=spec.key("dbt_models"),
        pool="duckdb",
    )
    def dataset_dbt_models(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        duckdb: DuckDBResource,
        settings: ChurnSettings,
    ) -> Iterator[Any]:
        """``dbt build`` with the dataset's vars, observation dates and the DuckDB path."""
        bounds = observation_bounds(spec, duckdb, settings.history_as_of(spec.name))
        variables = dbt_vars(spec, duckdb.path, bounds)
        if settings.engine == "spark":
            # The DuckDB connection (and its lock) is held throughout: it also keeps two runs
            # off the lake at once.
            with duckdb.connect() as con, spark_build(con, settings.spark_lake, spec) as extra:
                invocation = dbt.cli(
                    ["build", "--target", "spark", *vars_arg(variables | extra)], context=context
                )
                yield from invocation.stream()
            return
        with duckdb.lock():
            invocation = dbt.cli(["build", *vars_arg(variables)], context=context)
            yield from invocation.stream().fetch_row_counts()

    return dataset_dbt_models
