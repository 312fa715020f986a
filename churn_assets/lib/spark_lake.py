"""The Spark engine's lake: parquet folders that outlive every Spark session.

With ``CHURN_ENGINE=spark`` dbt runs the same feature models on a local PySpark session (the
``spark`` target of ``dbt/profiles.yml``). Its metastore lives in memory and its warehouse is a
fresh folder per run, so runs and test workers never share catalog state; what persists is the
lake, one folder per table: ``<lake>/<dataset>_<layer>/<table>/`` (day-partitioned tables as
``tile_date=YYYY-MM-DD/`` subfolders). Before each run the lake's tables are listed here and
registered by dbt's on-run-start hook, so sources resolve and incremental models find their
previous state.

The hand-offs are parquet both ways: the raw table goes in (:func:`export_table`, from the
validated DuckDB raw table), the marts come back (:func:`import_tables`, into the same DuckDB
tables the DuckDB engine writes), so every asset after the feature store reads the same tables
whichever engine built them. Pure: no Dagster here.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import qualified, quote, transaction

ENGINES = ("duckdb", "spark")
LAYERS = ("raw", "intermediate", "features")
"""Layers with tables in the lake (staging models are views: catalog entries only)."""


def table_dir(lake: Path, schema: str, table: str) -> Path:
    return lake / schema / table


def _has_parquet(folder: Path) -> bool:
    return any(folder.rglob("*.parquet"))


def _is_partitioned(folder: Path) -> bool:
    return any(child.is_dir() and "=" in child.name for child in folder.iterdir())


def lake_tables(lake: Path, spec: DatasetSpec) -> list[dict[str, Any]]:
    """The dataset's tables present in the lake, as dbt's on-run-start hook registers them."""
    tables = []
    for layer in LAYERS:
        schema = spec.db_schema(layer)
        folder = lake / schema
        if not folder.is_dir():
            continue
        for table in sorted(folder.iterdir()):
            if table.is_dir() and not table.name.startswith(".") and _has_parquet(table):
                tables.append(
                    {
                        "schema": schema,
                        "name": table.name,
                        "path": str(table.resolve()),
                        "partitioned": _is_partitioned(table),
                    }
                )
    return tables


@contextmanager
def spark_build(
    con: duckdb.DuckDBPyConnection, lake: Path, spec: DatasetSpec
) -> Iterator[dict[str, Any]]:
    """One dbt run on Spark, around the caller's ``dbt build --target spark``: the validated raw
    table goes to the lake first (every time, so the lake's copy is never stale: another engine
    may have loaded it, a replay may have moved its as-of date); the block gets the run's extra
    dbt vars (the lake, its tables, a warehouse folder of its own, removed afterwards: every
    table has a lake location); the marts come back into DuckDB when the block succeeds."""
    lake = lake.resolve()
    lake.mkdir(parents=True, exist_ok=True)
    export_table(con, spec.db_schema("raw"), spec.raw_table, lake)
    warehouse = Path(tempfile.mkdtemp(prefix="churn-spark-warehouse-"))
    try:
        yield {
            "spark_lake": str(lake),
            "spark_tables": lake_tables(lake, spec),
            "spark_warehouse": str(warehouse),
        }
    finally:
        shutil.rmtree(warehouse, ignore_errors=True)
    import_tables(con, lake, spec.db_schema("features"))


def export_table(con: duckdb.DuckDBPyConnection, schema: str, table: str, lake: Path) -> Path:
    """Write a DuckDB table to its lake folder as parquet, replacing the previous copy whole
    (written aside, then swapped in), so a Spark run never reads half a table."""
    target = table_dir(lake, schema, table)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{table}-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        con.execute(
            f"COPY (SELECT * FROM {qualified(schema, table)}) TO '{staging / 'part-0.parquet'}' "
            "(FORMAT parquet)"
        )
        retired = target.parent / f".{table}-retired-{uuid.uuid4().hex}"
        if target.exists():
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def import_tables(con: duckdb.DuckDBPyConnection, lake: Path, schema: str) -> list[str]:
    """Replace the DuckDB tables of ``schema`` with the lake's, in one transaction; return the
    table names. A DuckDB view of the same name (the DuckDB engine's features_latest) goes."""
    folder = lake / schema
    tables = [t for t in sorted(folder.iterdir()) if t.is_dir() and _has_parquet(t)]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    views = {
        row[0]
        for row in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ? AND table_type = 'VIEW'",
            [schema],
        ).fetchall()
    }
    with transaction(con):
        for table in tables:
            name = qualified(schema, table.name)
            if table.name in views:
                con.execute(f"DROP VIEW {name}")
            con.execute(
                f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM "
                f"read_parquet('{table}/**/*.parquet', hive_partitioning = true)"
            )
    return [t.name for t in tables]
