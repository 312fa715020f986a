"""The Python feature assets: monthly partitions (backfill of a range) and training sets."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from churn_assets.defs.features import monthly, training_sets
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import DuckDBResource
from churn_assets_tests.features.conftest import query

# One xdist worker builds the fixture databases once for every test of this folder.
pytestmark = pytest.mark.xdist_group("features_dbt")


def _resources(db: Path) -> dict[str, object]:
    return {"duckdb": DuckDBResource(path=str(db))}


def test_monthly_backfill_of_a_range_then_one_month(base_db: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [monthly.retail_features_monthly],
        resources=_resources(base_db),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2011-01-01",
            "dagster/asset_partition_range_end": "2011-06-01",
        },
    )
    assert result.success
    table = f"{monthly.SCHEMA}.{monthly.TABLE}"
    expected = query(
        base_db,
        "select observation_date, count(*) from features.fct_retail_labels group by 1 order by 1",
    )
    assert (
        query(base_db, f"select observation_date, count(*) from {table} group by 1 order by 1")
        == expected
    )

    again = dg.materialize(
        [monthly.retail_features_monthly],
        resources=_resources(base_db),
        instance=instance,
        partition_key="2011-03-01",
    )
    assert again.success
    assert (
        query(base_db, f"select observation_date, count(*) from {table} group by 1 order by 1")
        == expected
    )
    assert query(
        base_db,
        f"select count(*) from {table} where observation_date >= date '2011-04-01' and churned is not null",
    ) == [(0,)]


def _training_sets(db: Path) -> dict[str, TrainingSet]:
    result = dg.materialize(
        [training_sets.telco_training_set, training_sets.retail_training_set],
        resources=_resources(db),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {
        name: result.output_for_node(name) for name in ("telco_training_set", "retail_training_set")
    }


def test_training_sets_are_versioned_and_reproducible(
    base_db: Path, isolated_settings: Path
) -> None:
    first = _training_sets(base_db)
    mtimes = {name: ts.data_file.stat().st_mtime_ns for name, ts in first.items()}
    second = _training_sets(base_db)
    for name, ts in first.items():
        assert second[name].version == ts.version
        assert ts.data_file.stat().st_mtime_ns == mtimes[name]  # never rewritten
        frame = ts.frame()
        assert frame.columns == ["customer_id", "observation_date", "churned", *ts.features]
        assert frame.schema["customer_id"] == pl.String
        assert frame.schema["observation_date"] == pl.Date
        assert frame["churned"].null_count() == 0
        assert set(frame["churned"].unique()) <= {0, 1}
        provenance = json.loads(ts.provenance_file.read_text())
        assert provenance["version"] == ts.version
        assert provenance["row_counts"]["rows"] == frame.height
        assert all(provenance["dbt_models"].values())
        assert ts.path.parent.parent == isolated_settings / "processed"

    retail = first["retail_training_set"].frame()
    assert retail["observation_date"].max() == date(2011, 3, 1)  # matured labels only
    assert "tenure_bucket" in first["telco_training_set"].categorical_features
    assert first["telco_training_set"].frame()["observation_date"].unique().to_list() == [
        date(2019, 9, 30)
    ]
