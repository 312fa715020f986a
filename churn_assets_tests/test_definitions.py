"""The code location loads, and the graph has the shape the product promises."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg
import pytest

from churn_assets.definitions import defs as load_defs
from churn_assets.settings import REPO_ROOT

EXPECTED_ASSETS = {
    "sources": {
        "raw_telco_customers",
        "raw_retail_transactions",
        "telco_quality_report",
        "retail_quality_report",
    },
    "features": {
        "stg_retail_events",
        "int_retail_daily_tiles",
        "fct_retail_features",
        "fct_retail_labels",
        "fct_retail_training_spine",
        "fct_telco_features",
        "retail_features_latest",
        "retail_features_monthly",
        "telco_training_set",
        "retail_training_set",
    },
    "training": {
        "telco_baseline_model",
        "telco_xgboost_model",
        "telco_model_promotion",
        "telco_shap_explanations",
        "retail_baseline_model",
        "retail_xgboost_model",
        "retail_model_promotion",
        "retail_shap_explanations",
    },
    "monitoring": {"retail_scores", "retail_drift_report", "retail_realized_performance"},
}

EXPECTED_CHECKS = {
    ("raw_telco_customers", "telco_contract"),
    ("raw_retail_transactions", "retail_contract"),
    ("retail_drift_report", "drift_alert"),
    ("fct_retail_features", "unique_combination_fct_retail_features_customer_id__observation_date"),
}


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    return load_defs()


def test_every_stage_is_one_group_with_its_assets(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            groups.setdefault(node.group_name, set()).add(key.to_user_string())
    for group, assets in EXPECTED_ASSETS.items():
        assert assets <= groups.get(group, set()), (
            f"{group}: missing {assets - groups.get(group, set())}"
        )


def test_contract_and_dbt_checks_exist_and_contracts_block(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks >= EXPECTED_CHECKS
    for asset in ("raw_telco_customers", "raw_retail_transactions"):
        specs = graph.get(dg.AssetKey(asset)).assets_def.check_specs
        assert all(spec.blocking for spec in specs)


def test_every_asset_is_documented_owned_and_writers_share_the_duckdb_pool(
    defs: dg.Definitions,
) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owner"
        assert node.kinds, f"{key.to_user_string()} has no kinds"
    for group in ("sources", "features"):
        for name in EXPECTED_ASSETS[group]:
            assert graph.get(dg.AssetKey(name)).pools == {"duckdb"}, name


def test_sensors_schedules_and_partitions(defs: dg.Definitions) -> None:
    sensors = {s.name for s in defs.sensors or []}
    assert {"retail_landing_sensor", "retail_retraining_sensor"} <= sensors
    assert defs.schedules
    graph = defs.resolve_asset_graph()
    for name in ("retail_features_monthly", "retail_scores", "retail_drift_report"):
        partitions = graph.get(dg.AssetKey(name)).partitions_def
        assert isinstance(partitions, dg.MonthlyPartitionsDefinition), name


def test_dagster_cli_validates_the_code_location() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
