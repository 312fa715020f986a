"""The same dbt models on DuckDB and on Spark, and incremental runs against full refreshes.

On the edge-case fixture (fixtures.PARITY_LINES, 47 hand-written lines) both engines build the
features, labels and training spine from scratch and must agree row for row. Then the landing
month arrives together with a late correction to an old day and the withdrawal of another day's
only line: both engines build incrementally, and every per-day table and mart must equal a full
refresh on the final data, while a day nobody touched is left alone (a canary row planted there
survives) and the corrected day is rebuilt (its canary is gone).

Spark's start-up (~10 s) and its two builds make this the slowest test module; it runs on its
own xdist worker, beside the DuckDB-only feature tests. Spark builds the models without their
dbt data tests here (they cost ~0.3 s each on Spark; `make parity-spark` runs them on the real
data): equality with DuckDB, whose build runs them, is the stronger check.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml  # type: ignore[import-untyped]

from churn_assets.defs.features.project import run_models
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.engine_parity import Comparison, compare
from churn_assets.lib.features_dbt import DBT_PROJECT_DIR
from churn_assets.lib.spark_lake import table_dir
from churn_assets_tests.features import fixtures

pytestmark = pytest.mark.xdist_group("spark")

MARTS = ("fct_features", "fct_labels", "fct_training_spine")
PER_DAY = ("int_daily_tiles", "int_product_days", "int_purchase_history")
CANARY = "canary"
"""A customer id planted in the daily tiles between two builds: it survives where a day is not
rebuilt. It has no purchase, so no feature, label or history row ever sees it."""


def _observation(bounds: tuple[str, str]) -> tuple[date, date]:
    return date.fromisoformat(bounds[0]), date.fromisoformat(bounds[1])


@dataclass(frozen=True)
class Build:
    """One engine's DuckDB file (raw tables, marts) and, for Spark, its lake."""

    engine: str
    db: Path
    lake: Path
    target: Path

    def run(self, spec: DatasetSpec, observation: tuple[str, str]) -> None:
        run_models(
            spec,
            self.db,
            _observation(observation),
            engine=self.engine,
            lake=self.lake,
            target_path=self.target,
            command="build" if self.engine == "duckdb" else "run",
        )

    def relation(self, spec: DatasetSpec, table: str, alias: str) -> str:
        """The table as DuckDB reads it, with this build's file attached as ``alias``: Spark's
        per-day tables straight from the lake, everything else from the DuckDB file."""
        if self.engine == "spark" and table in PER_DAY:
            folder = table_dir(self.lake, spec.db_schema("intermediate"), table)
            return f"read_parquet('{folder}/**/*.parquet', hive_partitioning = true)"
        layer = "intermediate" if table in PER_DAY else "features"
        return f"{alias}.{spec.db_schema(layer)}.{table}"


def _plant_canaries(build: Build, spec: DatasetSpec, days: tuple[str, ...]) -> None:
    if build.engine == "duckdb":
        con = duckdb.connect(str(build.db))
        try:
            for day in days:
                con.execute(
                    f"INSERT INTO {spec.db_schema('intermediate')}.int_daily_tiles "
                    f"VALUES ('{CANARY}', DATE '{day}', 0, 0, 0, 0, 0)"
                )
        finally:
            con.close()
        return
    tiles = table_dir(build.lake, spec.db_schema("intermediate"), "int_daily_tiles")
    for day in days:
        pl.DataFrame(
            {"customer_id": [CANARY], "n_orders": [0], "n_lines": [0], "revenue": [0],
             "n_returns": [0], "return_value": [0]},
            schema={"customer_id": pl.String, "n_orders": pl.Int32, "n_lines": pl.Int32,
                    "revenue": pl.Decimal(18, 3), "n_returns": pl.Int32,
                    "return_value": pl.Decimal(18, 3)},
        ).write_parquet(tiles / f"tile_date={day}" / f"{CANARY}.parquet")  # fmt: skip


@pytest.fixture(scope="module")
def builds(
    tmp_path_factory: pytest.TempPathFactory,
    dbt_manifests: dict[str, Path],
    specs: dict[str, DatasetSpec],
) -> dict[str, Build]:
    """initial_<engine>: the edge-case fixture built from scratch (a copy kept); <engine>: then
    the landing month built incrementally; full: DuckDB's full refresh of the final data."""
    root = tmp_path_factory.mktemp("engines")
    retail = specs["retail"]
    engines = {
        name: Build(name, root / f"{name}.duckdb", root / f"lake_{name}", root / f"target_{name}")
        for name in ("duckdb", "spark")
    }
    out: dict[str, Build] = {}
    for name, build in engines.items():
        fixtures.write_raw(build.db, specs, fixtures.PARITY_LINES)
        build.run(retail, fixtures.PARITY_OBSERVATION)
        initial = root / f"initial_{name}.duckdb"
        shutil.copy(build.db, initial)
        out[f"initial_{name}"] = Build(name, initial, build.lake, build.target)
        _plant_canaries(build, retail, (fixtures.UNTOUCHED_DAY, fixtures.CORRECTED_DAY))
        fixtures.write_raw(build.db, specs, fixtures.parity_final_lines())
        build.run(retail, fixtures.PARITY_FINAL_OBSERVATION)
        out[name] = build
    full = Build("duckdb", root / "full.duckdb", root / "lake_full", root / "target_full")
    fixtures.write_raw(full.db, specs, fixtures.parity_final_lines())
    full.run(retail, fixtures.PARITY_FINAL_OBSERVATION)
    out["full"] = full
    return out


def _compare(
    spec: DatasetSpec, left: Build, right: Build, tables: tuple[str, ...], where: str = "true"
) -> list[Comparison]:
    con = duckdb.connect()
    try:
        for alias, build in (("left_db", left), ("right_db", right)):
            con.execute(f"ATTACH '{build.db}' AS {alias} (READ_ONLY)")
        return [
            compare(
                con,
                table,
                f"(SELECT * FROM {left.relation(spec, table, 'left_db')} WHERE {where})",
                f"(SELECT * FROM {right.relation(spec, table, 'right_db')} WHERE {where})",
            )
            for table in tables
        ]
    finally:
        con.close()


def test_spark_equals_duckdb_on_the_edge_case_fixture(
    builds: dict[str, Build], specs: dict[str, DatasetSpec]
) -> None:
    """Features, labels and the training spine, row for row (integers exactly, money to half a
    cent), from two engines running the same SQL."""
    assert len(fixtures.PARITY_LINES) >= 40
    results = _compare(specs["retail"], builds["initial_duckdb"], builds["initial_spark"], MARTS)
    for result in results:
        assert result.left_rows > 0 and result.equal, result
    assert {r.table: r.left_rows for r in results} == {r.table: r.right_rows for r in results}


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_incremental_run_equals_a_full_refresh(
    builds: dict[str, Build], specs: dict[str, DatasetSpec], engine: str
) -> None:
    """After the landing month, the correction and the withdrawn day: every per-day table and
    every mart equals DuckDB's full refresh of the final data (canaries aside)."""
    results = _compare(
        specs["retail"],
        builds[engine],
        builds["full"],
        PER_DAY + MARTS,
        where=f"customer_id <> '{CANARY}'",
    )
    for result in results:
        assert result.left_rows > 0 and result.equal, result


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_only_the_changed_days_are_rebuilt(
    builds: dict[str, Build], specs: dict[str, DatasetSpec], engine: str
) -> None:
    """The canary of a day nobody touched survives the incremental run, the corrected day's is
    gone (that day was rebuilt), and the withdrawn day left no row in any per-day table."""
    spec, build = specs["retail"], builds[engine]
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{build.db}' AS built (READ_ONLY)")
        tiles = build.relation(spec, "int_daily_tiles", "built")
        canaries = con.execute(
            f"SELECT cast(tile_date AS varchar) FROM {tiles} WHERE customer_id = '{CANARY}'"
        ).fetchall()
        withdrawn = [
            con.execute(
                f"SELECT count(*) FROM {build.relation(spec, table, 'built')} "
                f"WHERE cast(tile_date AS varchar) = '{fixtures.WITHDRAWN_DAY}'"
            ).fetchone()
            for table in PER_DAY
        ]
    finally:
        con.close()
    assert canaries == [(fixtures.UNTOUCHED_DAY,)]
    assert withdrawn == [(0,)] * len(PER_DAY)


def test_spark_session_draws_no_console_progress_bar() -> None:
    """dagster-dbt reads dbt's JSON log events line by line from the output Spark's console
    progress bar is drawn on (with carriage returns, no newline): a bar in front of an event's
    line makes it unparseable and the model goes unreported, so the dbt asset yields no output
    for it and everything downstream is skipped. The Spark target keeps the bar off."""
    profile = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    spark = profile["churn_features"]["outputs"]["spark"]
    assert spark["server_side_parameters"]["spark.ui.showConsoleProgress"] == "false"
