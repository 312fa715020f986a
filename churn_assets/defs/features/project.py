"""The dbt project of the feature store as dagster-dbt sees it, once per declared dataset.

Each dataset has its own manifest under ``dbt/target/<dataset>/``, parsed with its vars (so
relation names and the models of its kind are right). Parsing takes seconds, so it never happens
at import: the code location parses a missing manifest (or every one under ``dagster dev``, so
SQL edits show up), and ``make run`` / ``make ui`` re-parse first (``churn_assets.cli prepare``).
"""

import json
import shutil
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import using_dagster_dev

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_dbt import DBT_PROJECT_DIR, dbt_vars, vars_arg
from churn_assets.lib.file_lock import file_lock
from churn_assets.lib.spark_lake import spark_build


@cache
def dbt_project(dataset: str) -> DbtProject:
    """The feature store's dbt project with this dataset's target folder."""
    return DbtProject(
        project_dir=DBT_PROJECT_DIR,
        profiles_dir=DBT_PROJECT_DIR,
        target_path=Path("target") / dataset,
    )


def dbt_executable() -> str:
    """The venv's dbt, so runs work without an activated venv (``dbt`` on PATH otherwise)."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else shutil.which("dbt") or "dbt"


def dbt_resource(dataset: str | None = None) -> DbtCliResource:
    """The dbt CLI resource; the dataset picks the target folder of manifests it prepares."""
    project = dbt_project(dataset) if dataset else DBT_PROJECT_DIR
    return DbtCliResource(
        project_dir=project, profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
    )


def prepare_manifest(spec: DatasetSpec) -> DbtProject:
    """Run ``dbt parse`` with the dataset's vars now; the manifest is at ``manifest_path``.

    Same effect as ``DbtProject.prepare_if_dev`` under ``dagster dev``, but with the venv's dbt:
    dagster-dbt's default preparer calls a bare ``dbt`` that is absent without an active venv.
    """
    prepare_manifests([spec])
    return dbt_project(spec.name)


def prepare_manifests(specs: Sequence[DatasetSpec]) -> None:
    """Parse several datasets' manifests at once: each ``dbt parse`` is its own process, mostly
    single-threaded start-up, so two datasets on two cores take the time of one."""
    with ExitStack() as locks:
        # Parallel test workers or a concurrent `dagster dev` must not interleave writes to
        # target/: each manifest is written under its lock.
        invocations = []
        for spec in sorted(specs, key=lambda s: s.name):
            project = dbt_project(spec.name)
            locks.enter_context(file_lock(project.manifest_path, timeout_seconds=300))
            invocations.append(
                dbt_resource(spec.name).cli(
                    ["parse", "--quiet", *vars_arg(dbt_vars(spec))],
                    target_path=project.target_path,
                )
            )
        for invocation in invocations:
            invocation.wait()


def ensure_manifest(spec: DatasetSpec) -> DbtProject:
    """The project with a manifest: re-parsed under ``dagster dev``, parsed if missing."""
    project = dbt_project(spec.name)
    if using_dagster_dev() or not project.manifest_path.exists():
        prepare_manifest(spec)
    return project


def read_manifest(spec: DatasetSpec) -> dict[str, Any]:
    """The manifest, read under the lock ``dbt parse`` writes it under (never half-written)."""
    path = dbt_project(spec.name).manifest_path
    with file_lock(path, exclusive=False, timeout_seconds=300):
        return json.loads(path.read_text())


def model_checksums(spec: DatasetSpec) -> dict[str, str]:
    """sha256 of every model's SQL, from the manifest (dbt's own file checksums)."""
    return {
        node["name"]: node["checksum"]["checksum"]
        for node in read_manifest(spec)["nodes"].values()
        if node["resource_type"] == "model"
    }


def run_models(
    spec: DatasetSpec,
    duckdb_path: Path,
    observation: tuple[date, date] | None,
    *,
    engine: str = "duckdb",
    lake: Path | None = None,
    target_path: Path | None = None,
    command: str = "build",
) -> None:
    """Run a dataset's models outside Dagster (tests, parity checks, measurements) the way the
    dbt asset does: on DuckDB into ``duckdb_path``; on Spark from and into ``lake``, with the raw
    table exported from and the marts imported back into ``duckdb_path``."""
    variables = dbt_vars(spec, str(duckdb_path), observation)
    dbt = dbt_resource(spec.name)
    if engine == "duckdb":
        dbt.cli([command, *vars_arg(variables)], target_path=target_path).wait()
        return
    assert lake is not None, "the Spark engine needs its lake folder"
    con = duckdb.connect(str(duckdb_path))
    try:
        with spark_build(con, lake, spec) as extra:
            dbt.cli(
                [command, "--target", "spark", *vars_arg(variables | extra)],
                target_path=target_path,
            ).wait()
    finally:
        con.close()
