"""The registry is the single source of truth: table columns, dbt vars and asset metadata agree."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from churn_assets.defs.features.dbt_models import build_dbt_assets
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets_tests.features.conftest import query

# One xdist worker builds the fixture databases once for every test of this folder.
pytestmark = pytest.mark.xdist_group("features_dbt")

DUCKDB_TYPES = {"integer": {"INTEGER", "BIGINT"}, "double": {"DOUBLE"}, "varchar": {"VARCHAR"}}


def test_every_column_declared_and_every_feature_exists(
    base_db: Path, specs: dict[str, DatasetSpec]
) -> None:
    for spec in specs.values():
        features = feature_set(spec)
        columns = query(
            base_db,
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = '{spec.db_schema('features')}' "
            f"and table_name = '{features.model}' order by ordinal_position",
        )
        names = [
            name
            for name, _ in columns
            if name not in ("customer_id", "observation_date", "churned")
        ]
        assert names == list(features.names), spec.name  # both ways, same order
        types = dict(columns)
        for feature in features.features:
            assert types[feature.name] in DUCKDB_TYPES[feature.dtype], feature.name


def test_feature_names_unique_and_every_feature_has_a_family(specs: dict[str, DatasetSpec]) -> None:
    for spec in specs.values():
        names = feature_set(spec).names
        assert len(names) == len(set(names))
        assert set(feature_set(spec).families) == set(names)


def test_registry_hash_tracks_definitions(specs: dict[str, DatasetSpec]) -> None:
    retail = specs["retail"]
    wider = retail.model_copy(
        update={"events": retail.ev.model_copy(update={"windows": [30, 60, 120]})}
    )
    assert feature_set(wider).registry_hash != feature_set(retail).registry_hash
    assert "orders_120d" in feature_set(wider).names
    assert feature_set(retail).registry_hash == feature_set(retail).registry_hash


def test_dbt_tests_are_asset_checks_and_catalogue_is_attached(
    dbt_manifests: dict[str, Path], specs: dict[str, DatasetSpec]
) -> None:
    for spec in specs.values():
        asset = build_dbt_assets(spec)
        features = feature_set(spec)
        key = dg.AssetKey(spec.key(features.model))
        assert key in asset.keys
        spec_of = asset.specs_by_key[key]
        assert spec_of.group_name == "features"
        assert "feature_catalogue" in spec_of.metadata
        assert spec_of.code_version is not None
        checks = {c.name for c in asset.check_specs}
        assert f"features_not_null_{features.model}_" in checks
        assert all(k.to_user_string().startswith(f"{spec.name}_") for k in asset.keys)
    retail = build_dbt_assets(specs["retail"])
    assert retail.asset_deps[dg.AssetKey("retail_stg_events")] == {dg.AssetKey("retail_raw_events")}
