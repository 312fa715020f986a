"""The dbt project of the feature store (``dbt/``) as dagster-dbt sees it, and its manifest.

dagster-dbt needs ``dbt/target/manifest.json`` to build asset definitions, and parsing takes
seconds, so it never happens at import. When the code location loads, :func:`ensure_manifest`
re-parses under ``dagster dev`` (what ``DbtProject.prepare_if_dev`` does, so SQL edits show up)
and otherwise only when the file is missing (fresh clone, tests). ``make run`` / ``make ui`` call
:func:`prepare_manifest` first (via ``churn_assets.cli prepare``), which always re-parses
(about 4 s) so the manifest never lags behind the SQL; ``python -m churn_assets.lib.features_dbt``
does the same from a shell.
"""

from __future__ import annotations

import json
import shutil
import sys
from functools import cache
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from dagster_dbt.dbt_project import using_dagster_dev

from churn_assets.lib.file_lock import file_lock
from churn_assets.settings import DBT_PROJECT_DIR, Settings


@cache
def dbt_project() -> DbtProject:
    """The feature store's dbt project; profiles.yml lives beside dbt_project.yml."""
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """The venv's dbt, so runs work without an activated venv (``dbt`` on PATH otherwise)."""
    beside_python = Path(sys.executable).parent / "dbt"
    return str(beside_python) if beside_python.exists() else shutil.which("dbt") or "dbt"


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable())


def prepare_manifest() -> DbtProject:
    """Run ``dbt parse`` now and return the project (manifest at ``project.manifest_path``).

    Same effect as ``DbtProject.prepare_if_dev`` under ``dagster dev``, but with the venv's dbt:
    dagster-dbt's default preparer calls a bare ``dbt`` that is absent without an active venv.
    """
    project = dbt_project()

    # Parallel test workers or a concurrent `dagster dev` must not interleave writes to target/.
    with file_lock(project.manifest_path, timeout_seconds=300):
        dbt_resource().cli(["parse", "--quiet"], target_path=project.target_path).wait()
    return project


def ensure_manifest() -> DbtProject:
    """Return the project with a manifest: re-parsed under ``dagster dev``, parsed if missing."""
    project = dbt_project()
    if using_dagster_dev() or not project.manifest_path.exists():
        prepare_manifest()
    return project


def read_manifest() -> dict[str, Any]:
    """The manifest, read under the lock ``dbt parse`` writes it under (never half-written)."""
    path = dbt_project().manifest_path
    with file_lock(path, exclusive=False, timeout_seconds=300):
        return json.loads(path.read_text())


def dbt_vars(settings: Settings, duckdb_path: str) -> dict[str, Any]:
    """The dbt vars of a run: observation range and label horizon come from the settings."""
    return {
        "duckdb_path": duckdb_path,
        "observation_start": settings.observation_start.isoformat(),
        "observation_end": settings.observation_end.isoformat(),
        "label_horizon_days": settings.label_horizon_days,
    }


def dbt_vars_arg(settings: Settings, duckdb_path: str) -> list[str]:
    return ["--vars", json.dumps(dbt_vars(settings, duckdb_path), sort_keys=True)]


def model_checksums() -> dict[str, str]:
    """sha256 of every model's SQL, from the manifest (dbt's own file checksums)."""
    manifest = read_manifest()
    return {
        node["name"]: node["checksum"]["checksum"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


if __name__ == "__main__":
    print(prepare_manifest().manifest_path)


# The dbt models that compute retail features, in build order, and the labels built on them:
# one list shared by the training-set provenance and the benchmark.
RETAIL_FEATURE_CHAIN = (
    "stg_retail_events",
    "int_observation_dates",
    "int_retail_daily_tiles",
    "int_retail_purchase_history",
    "int_retail_product_days",
    "int_retail_customer_asof",
    "fct_retail_features",
)
RETAIL_LABEL_CHAIN = ("fct_retail_labels",)
