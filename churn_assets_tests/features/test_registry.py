"""The registry is the single source of truth: table columns, dbt YAML and asset metadata agree."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from churn_assets.lib import features_registry
from churn_assets_tests.features.conftest import query

# One xdist worker builds the fixture databases once for every test of this folder.
pytestmark = pytest.mark.xdist_group("features_dbt")

DUCKDB_TYPES = {"integer": "INTEGER", "double": "DOUBLE", "varchar": "VARCHAR"}


def test_every_column_declared_and_every_feature_exists(base_db: Path) -> None:
    for model in features_registry.MODELS.values():
        columns = query(
            base_db,
            "select column_name, data_type from information_schema.columns "
            f"where table_schema = 'features' and table_name = '{model.name}' "
            "order by ordinal_position",
        )
        undeclared = [name for name, _ in columns if name not in model.keys + model.labels]
        declared = features_registry.features_of(model.name)
        assert undeclared == [f.name for f in declared], model.name  # both ways, same order
        types = dict(columns)
        assert {f.name: types[f.name] for f in declared} == {
            f.name: DUCKDB_TYPES[f.dtype] for f in declared
        }


def test_dbt_yaml_is_generated_from_registry() -> None:
    assert features_registry.DBT_YAML_PATH.read_text() == features_registry.render_dbt_yaml()
    assert features_registry.main(["--check"]) == 0


def test_feature_names_unique() -> None:
    names = [(f.source, f.name) for f in features_registry.FEATURES]
    assert len(names) == len(set(names))


def test_registry_hash_tracks_definitions(monkeypatch) -> None:
    before = features_registry.registry_hash("fct_retail_features")
    first, *rest = features_registry.FEATURES
    bumped = (type(first)(**{**first.__dict__, "version": first.version + 1}), *rest)
    monkeypatch.setattr(features_registry, "FEATURES", bumped)
    assert features_registry.registry_hash("fct_retail_features") != before


def test_dbt_tests_are_asset_checks_and_catalogue_is_attached(dbt_manifest: Path) -> None:
    from churn_assets.defs.features import dbt_models
    from churn_assets.resources import build_resources

    defs = dg.Definitions.merge(dbt_models.defs(), dg.Definitions(resources=build_resources()))
    graph = defs.resolve_asset_graph()
    manifest = json.loads(dbt_manifest.read_text())
    dbt_tests = {
        node["name"] for node in manifest["nodes"].values() if node["resource_type"] == "test"
    }
    assert {key.name for key in graph.asset_check_keys} == dbt_tests
    features = graph.get(dg.AssetKey("fct_retail_features"))
    assert features.group_name == "features"
    assert "feature_catalogue" in features.metadata
    assert features.code_version is not None
    assert features.pools == {"duckdb"}
    assert set(features.kinds) >= {"dbt", "duckdb"}
    assert graph.get(dg.AssetKey("stg_retail_events")).parent_keys == {
        dg.AssetKey("raw_retail_transactions")
    }
