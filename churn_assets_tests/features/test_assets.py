"""The Python feature assets: monthly partitions (backfill of a range) and training sets."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from churn_assets.defs.features.monthly import build_features_monthly
from churn_assets.defs.features.training_sets import build_training_set
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.training_set import TrainingSet
from churn_assets.partitions import partitions_name
from churn_assets.resources import build_resources
from churn_assets.settings import ChurnSettings
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.features.conftest import query

# One xdist worker builds the fixture databases once for every test of this folder.
pytestmark = pytest.mark.xdist_group("features_dbt")
MONTHS = ["2011-01-01", "2011-02-01", "2011-03-01", "2011-04-01", "2011-05-01", "2011-06-01"]


def _settings(home: Path, db: Path) -> ChurnSettings:
    return settings_for(home, duckdb_path=str(db))


def test_monthly_backfill_of_a_range_then_one_month(
    base_db: Path, tmp_path: Path, specs: dict[str, DatasetSpec]
) -> None:
    retail = specs["retail"]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(partitions_name(retail), MONTHS)
    asset = build_features_monthly(retail)
    resources = build_resources(_settings(tmp_path, base_db))
    result = dg.materialize(
        [asset],
        resources=resources,
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": MONTHS[0],
            "dagster/asset_partition_range_end": MONTHS[-1],
        },
    )
    assert result.success
    table = "retail_features.features_monthly"
    expected = query(
        base_db,
        "select observation_date, count(*) from retail_features.fct_labels group by 1 order by 1",
    )
    counts = f"select observation_date, count(*) from {table} group by 1 order by 1"
    assert query(base_db, counts) == expected
    again = dg.materialize(
        [asset], resources=resources, instance=instance, partition_key="2011-03-01"
    )
    assert again.success
    assert query(base_db, counts) == expected
    assert query(
        base_db,
        f"select count(*) from {table} where observation_date >= date '2011-04-01' "
        "and (churned is not null or is_mature)",
    ) == [(0,)]


def _training_sets(db: Path, home: Path, specs: dict[str, DatasetSpec]) -> dict[str, TrainingSet]:
    result = dg.materialize(
        [build_training_set(specs["telco"]), build_training_set(specs["retail"])],
        resources=build_resources(_settings(home, db)),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    return {name: result.output_for_node(f"{name}_training_set") for name in ("telco", "retail")}


def test_training_sets_are_versioned_and_reproducible(
    base_db: Path, tmp_path: Path, specs: dict[str, DatasetSpec]
) -> None:
    first = _training_sets(base_db, tmp_path, specs)
    mtimes = {name: ts.data_file.stat().st_mtime_ns for name, ts in first.items()}
    second = _training_sets(base_db, tmp_path, specs)
    for name, ts in first.items():
        assert second[name].version == ts.version
        assert ts.data_file.stat().st_mtime_ns == mtimes[name]  # never rewritten
        frame = ts.frame()
        assert frame.columns[:3] == ["customer_id", "observation_date", "churned"]
        assert set(ts.features) <= set(frame.columns)
        assert frame.schema["customer_id"] == pl.String
        assert frame.schema["observation_date"] == pl.Date
        assert frame["churned"].null_count() == 0
        assert set(frame["churned"].unique()) <= {0, 1}
        provenance = json.loads(ts.provenance_file.read_text())
        assert provenance["version"] == ts.version
        assert provenance["row_counts"]["rows"] == frame.height
        assert all(provenance["dbt_models"].values())
        # provenance names the file the raw table was actually loaded from
        assert [f["file"] for f in provenance["raw_files"]] == [
            f"base.{'csv' if name == 'telco' else 'parquet'}"
        ]
        assert ts.path.parent.parent == tmp_path / "data" / "processed"

    retail = first["retail"].frame()
    assert retail["observation_date"].max() == date(2011, 3, 1)  # matured labels only
    assert "tenure_bucket" in first["telco"].categorical_features
    assert first["telco"].frame()["observation_date"].unique().to_list() == [date(2019, 9, 30)]


def test_unsupported_features_are_left_out_with_the_reason(
    base_db: Path, tmp_path: Path, specs: dict[str, DatasetSpec]
) -> None:
    """On the fixture every telco customer is female and has a phone: those declared features
    cannot be learned from, so the training set leaves them out and says why."""
    telco = _training_sets(base_db, tmp_path, specs)["telco"]
    assert telco.excluded_features["gender"].startswith("constant on this data")
    assert "gender" not in telco.features
    provenance = json.loads(telco.provenance_file.read_text())
    assert provenance["excluded_features"] == telco.excluded_features
