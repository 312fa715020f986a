"""Two processes writing the project's DuckDB file at once: the ``duckdb`` pool and the
resource's file lock keep them from failing on DuckDB's single-writer lock.

The champion here is a logistic baseline registered through the registry helpers (no tuning, no
plots): this test is about concurrent writers, and the monitoring loop's module already covers
the champion the real training assets make.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb

from churn_assets.defs.features.monthly import build_features_monthly
from churn_assets.defs.monitoring.scoring import build_scores
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.partitions import partitions_name
from churn_assets.resources import build_resources
from churn_assets.settings import REPO_ROOT
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.monitoring.fixtures import (
    CUSTOMERS,
    register_quick_champion,
    synthetic_feature_store,
    write_feature_store,
)
from churn_assets_tests.training.fixtures import seed_mlflow_store

RUN_MONTH = """
import sys
import dagster as dg
from churn_assets.defs.features.monthly import build_features_monthly
from churn_assets.defs.monitoring.drift import build_drift
from churn_assets.defs.monitoring.scoring import build_scores
from churn_assets.lib.datasets import load_declarations
from churn_assets.resources import build_resources
from churn_assets.settings import settings_from_env

spec = load_declarations()["retail"]
assets = [build_features_monthly(spec), build_scores(spec)]
resources = build_resources(settings_from_env({"CHURN_HOME": sys.argv[1]}))
print("ready", flush=True)
sys.stdin.readline()  # start together with the test process
with dg.DagsterInstance.get() as instance:
    result = dg.materialize(
        assets, partition_key=sys.argv[2], instance=instance, resources=resources,
        raise_on_error=False,
    )
sys.exit(0 if result.success else 1)
"""


def test_two_concurrent_processes_write_duckdb_without_lock_errors(
    specs: dict[str, DatasetSpec], tmp_path: Path, mlflow_store_template: Path
) -> None:
    """Two processes score a month each at the same moment (this one and a child, which imports
    first and then waits for the start signal), on an instance with the project's
    ``dagster.yaml``: the ``duckdb`` pool schedules their DuckDB steps (features at T and scores,
    the two that write) and the resource's file lock covers the pool's sqlite race, so neither
    hits DuckDB's single-writer lock."""
    spec = specs["retail"]
    settings = settings_for(tmp_path / "project")
    seed_mlflow_store(settings, mlflow_store_template)
    write_feature_store(spec, settings.duckdb_path, synthetic_feature_store(spec))
    register_quick_champion(spec, settings)
    here, there = "2011-03-01", "2011-04-01"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    # Create the storage once, as `make` does, with the observation dates the raw load adds.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(partitions_name(spec), [here, there])
    child = subprocess.Popen(
        [sys.executable, "-c", RUN_MONTH, settings.home, there],
        cwd=REPO_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    before = []
    while (line := child.stdout.readline()) and line.strip() != "ready":
        before.append(line)
    assert line, "".join(before)[-3000:]  # the child died before it was ready
    child.stdin.write("go\n")
    child.stdin.flush()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [build_features_monthly(spec), build_scores(spec)],
            partition_key=here,
            instance=instance,
            resources=build_resources(settings),
            raise_on_error=False,
        )
    output = child.communicate(timeout=600)[0]
    assert child.returncode == 0, output[-3000:]
    assert "Could not set lock" not in output
    assert result.success
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        counts = con.execute(
            "SELECT observation_date, count(*) FROM retail_monitoring.scores "
            f"WHERE observation_date IN ('{here}', '{there}') GROUP BY 1"
        ).fetchall()
    assert sorted(n for _, n in counts) == [CUSTOMERS, CUSTOMERS]
