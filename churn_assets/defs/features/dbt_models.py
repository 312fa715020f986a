"""The dbt feature models (staging -> daily tiles -> marts) as Dagster assets.

One ``@dbt_assets`` op runs ``dbt build`` over the selected models, so every dbt test runs right
after its model and reports as a Dagster asset check. The op writes the DuckDB file, hence the
``duckdb`` pool. The manifest is prepared when the code location loads (see
:mod:`churn_assets.lib.features_dbt`); importing this module never invokes dbt.
"""

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from churn_assets.lib import features_dbt, features_registry
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_DATA, get_settings

GROUP = "features"


class FeatureStoreTranslator(DagsterDbtTranslator):
    """Flat asset keys (model name; sources mapped by their ``meta.dagster.asset_key``), group
    ``features``, the data-platform owner, and for feature models a code version and catalogue
    derived from the registry so a changed feature definition shows the asset as stale."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey(dbt_resource_props["name"])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER_DATA]

    def get_code_version(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        sql_version = super().get_code_version(dbt_resource_props)
        name = dbt_resource_props["name"]
        if name not in features_registry.MODELS or sql_version is None:
            return sql_version
        combined = f"{sql_version}:{features_registry.registry_hash(name)}"
        return hashlib.sha256(combined.encode()).hexdigest()[:16]

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        name = dbt_resource_props["name"]
        if name in features_registry.MODELS:
            metadata["feature_catalogue"] = dg.MetadataValue.md(
                features_registry.catalogue_markdown(name)
            )
            metadata["feature_registry_hash"] = features_registry.registry_hash(name)
            metadata["n_features"] = len(features_registry.features_of(name))
        return metadata


TRANSLATOR = FeatureStoreTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def build_dbt_assets() -> dg.AssetsDefinition:
    """Build the ``@dbt_assets`` definition from a freshly prepared manifest."""
    project = features_dbt.ensure_manifest()

    @dbt_assets(
        manifest=features_dbt.read_manifest(),
        project=project,
        dagster_dbt_translator=TRANSLATOR,
        name="churn_features_dbt",
        pool="duckdb",
    )
    def churn_features_dbt(
        context: AssetExecutionContext, dbt: DbtCliResource, duckdb: DuckDBResource
    ) -> Iterator[Any]:
        """``dbt build`` with the observation range, horizon and DuckDB path from Dagster."""
        args = ["build", *features_dbt.dbt_vars_arg(get_settings(), duckdb.path)]
        with duckdb.lock():
            yield from dbt.cli(args, context=context).stream().fetch_row_counts()

    return churn_features_dbt


@dg.definitions
def defs() -> dg.Definitions:
    """Lazy so that loading the module stays cheap; the dbt resource is only needed here."""
    return dg.Definitions(
        assets=[build_dbt_assets()],
        resources={"dbt": features_dbt.dbt_resource()},
    )
