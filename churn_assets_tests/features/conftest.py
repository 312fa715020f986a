"""Session fixtures: each dataset's dbt manifest is parsed once, and the fixture is built three
times (base, perturbed raw data, a 60-day label horizon), because each dbt start-up costs
seconds. Every test reads those DuckDB files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from dagster_dbt import DbtCliInvocation

from churn_assets.defs.features.project import dbt_resource, prepare_manifest
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_dbt import dbt_vars, vars_arg
from churn_assets_tests.features import fixtures

OBSERVATION = (
    date.fromisoformat(fixtures.OBSERVATION_START),
    date.fromisoformat(fixtures.OBSERVATION_END),
)


def with_horizon(spec: DatasetSpec, days: int) -> DatasetSpec:
    """The same declaration with another label horizon (one knob, one place)."""
    return spec.model_copy(
        update={"events": spec.ev.model_copy(update={"label_horizon_days": days})}
    )


@pytest.fixture(scope="session")
def feature_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this session's fixture databases and dbt targets live (never the repo's data/)."""
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="session")
def dbt_manifests(specs: dict[str, DatasetSpec]) -> dict[str, Path]:
    """Fresh manifests for this session (the same call `make run` makes)."""
    return {name: prepare_manifest(spec).manifest_path for name, spec in specs.items()}


def _build(spec: DatasetSpec, db: Path, target: Path) -> DbtCliInvocation:
    observation = OBSERVATION if spec.kind == "events" else None
    return dbt_resource(spec.name).cli(
        ["build", *vars_arg(dbt_vars(spec, str(db), observation))], target_path=target
    )


@pytest.fixture(scope="session")
def fixture_dbs(
    feature_dir: Path, dbt_manifests: dict[str, Path], specs: dict[str, DatasetSpec]
) -> dict[str, Path]:
    """The hand-built fixture, a copy with events at or after T* changed or added, and the
    fixture under a 60-day horizon, all built by the real dbt models (every dbt test must pass)."""
    retail, telco = specs["retail"], specs["telco"]
    builds = {
        "base": (fixtures.BASE_LINES, [retail, telco]),
        "perturbed": (fixtures.perturbed_lines(), [retail]),
        "horizon60": (fixtures.BASE_LINES, [with_horizon(retail, 60)]),
    }
    dbs = {}
    for name, (lines, _) in builds.items():
        dbs[name] = feature_dir / f"{name}.duckdb"
        fixtures.write_raw(dbs[name], specs, lines)
    # One writer per DuckDB file at a time; different files build side by side.
    waves = [
        [(name, spec) for name, (_, wave) in builds.items() for spec in wave[:1]],
        [(name, spec) for name, (_, wave) in builds.items() for spec in wave[1:]],
    ]
    for wave in waves:
        invocations = [
            _build(spec, dbs[name], feature_dir / f"target_{name}_{spec.name}")
            for name, spec in wave
        ]
        for invocation in invocations:
            invocation.wait()
    return dbs


@pytest.fixture(scope="session")
def base_db(fixture_dbs: dict[str, Path]) -> Path:
    return fixture_dbs["base"]


@pytest.fixture(scope="session")
def perturbed_db(fixture_dbs: dict[str, Path]) -> Path:
    return fixture_dbs["perturbed"]


@pytest.fixture(scope="session")
def horizon60_db(fixture_dbs: dict[str, Path]) -> Path:
    return fixture_dbs["horizon60"]


def query(db_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
