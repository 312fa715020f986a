"""Session fixtures: the dbt project is parsed once and built twice (base and perturbed raw
data), because each dbt start-up costs seconds. Every test reads those two DuckDB files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from dagster_dbt import DbtCliInvocation

from churn_assets.lib import features_dbt
from churn_assets.settings import get_settings
from churn_assets_tests.features import fixtures


@pytest.fixture(scope="session")
def feature_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's fixture databases and dbt targets live (never the repo's data/)."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture
def isolated_settings(feature_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointing at a temporary home, for assets that write files (training sets)."""
    monkeypatch.setenv("CHURN_HOME", str(feature_dir / "home"))
    monkeypatch.setenv("CHURN_PROCESSED_DIR", str(feature_dir / "home" / "processed"))
    get_settings.cache_clear()
    yield feature_dir / "home"
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """A fresh manifest for this session (the same call the Makefile makes)."""
    return features_dbt.prepare_manifest().manifest_path


def _start_build(db_path: Path, lines: tuple[fixtures.Line, ...], target: Path) -> DbtCliInvocation:
    fixtures.write_raw(db_path, lines)
    dbt_vars = {
        "duckdb_path": str(db_path),
        "observation_start": fixtures.OBSERVATION_START,
        "observation_end": fixtures.OBSERVATION_END,
        "label_horizon_days": fixtures.HORIZON_DAYS,
    }
    return features_dbt.dbt_resource().cli(
        ["build", "--vars", json.dumps(dbt_vars)], target_path=target
    )


@pytest.fixture(scope="session")
def fixture_dbs(feature_dir: Path, dbt_manifest: Path) -> dict[str, Path]:
    """The hand-built fixture and a copy with events at or after T* changed or added, both
    built by the real dbt models (every dbt test must pass), as two concurrent dbt processes."""
    builds = {
        "base": (fixtures.BASE_LINES, feature_dir / "base.duckdb"),
        "perturbed": (fixtures.perturbed_lines(), feature_dir / "perturbed.duckdb"),
    }
    invocations = [
        _start_build(db, lines, feature_dir / f"target_{name}")
        for name, (lines, db) in builds.items()
    ]
    for invocation in invocations:
        invocation.wait()
    return {name: db for name, (_, db) in builds.items()}


@pytest.fixture(scope="session")
def base_db(fixture_dbs: dict[str, Path]) -> Path:
    return fixture_dbs["base"]


@pytest.fixture(scope="session")
def perturbed_db(fixture_dbs: dict[str, Path]) -> Path:
    return fixture_dbs["perturbed"]


def query(db_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
