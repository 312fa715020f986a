"""One end-to-end materialization of the real graph on the real bundled data.

The same two steps as ``make run`` (every unpartitioned asset, then monthly partitions), with a
tiny tuning budget so it stays a test: raw tables → dbt features → training sets → models →
promotion → SHAP, then one observation month of features, scores and drift. One test, so the
expensive materialization happens exactly once whatever the xdist distribution.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from churn_assets.definitions import defs as load_defs
from churn_assets.settings import Settings, get_settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MONTH = "2011-06-01"
FAST_TRAINING = {"n_trials": 2, "max_rounds": 60}


def _job(defs: dg.Definitions, name: str, selection: dg.AssetSelection) -> dg.JobDefinition:
    return dg.Definitions.merge(
        defs, dg.Definitions(jobs=[dg.define_asset_job(name, selection=selection)])
    ).resolve_job_def(name)


@pytest.fixture
def real_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / '.state/mlflow/mlflow.db'}")
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_dirs()
    yield settings
    get_settings.cache_clear()


def _failed_error_checks(
    instance: dg.DagsterInstance, graph: dg.AssetGraph
) -> tuple[int, list[str]]:
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(graph.asset_check_keys)
    )
    evaluations = [(k, r.evaluation) for k, r in records.items() if r and r.evaluation]
    failed = [
        key.to_user_string()
        for key, evaluation in evaluations
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    ]
    return len(evaluations), failed


def test_real_graph_end_to_end(real_home: Settings) -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    instance = dg.DagsterInstance.ephemeral()
    partitioned = [k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def]
    xgboost_ops = {
        graph.get(dg.AssetKey(f"{ds}_xgboost_model")).assets_def.op.name: {"config": FAST_TRAINING}
        for ds in ("telco", "retail")
    }

    main = _job(defs, "main_job", dg.AssetSelection.all() - dg.AssetSelection.assets(*partitioned))
    assert main.execute_in_process(instance=instance, run_config={"ops": xgboost_ops}).success
    monthly = _job(defs, "monthly_job", dg.AssetSelection.assets(*partitioned))
    assert monthly.execute_in_process(instance=instance, partition_key=MONTH).success

    evaluated, failed = _failed_error_checks(instance, graph)
    assert evaluated > 100
    assert failed == []

    with duckdb.connect(str(real_home.duckdb_path), read_only=True) as con:
        telco = con.execute(
            "SELECT count(*), sum(total_charges_imputed::int) FROM raw.telco_customers"
        ).fetchone()
        retail = con.execute("SELECT count(*) FROM raw.retail_transactions").fetchone()
        scored = con.execute(
            "SELECT count(*), count(DISTINCT model_version) FROM monitoring.retail_scores "
            "WHERE observation_date = ?",
            [MONTH],
        ).fetchone()
    assert telco == (7043, 11)
    assert retail == (1_044_847,)
    assert scored is not None and scored[0] > 1000 and scored[1] == 1

    import mlflow

    mlflow.set_tracking_uri(real_home.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    for name in ("churn-telco", "churn-retail"):
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    drift = instance.get_latest_materialization_event(dg.AssetKey("retail_drift_report"))
    assert drift is not None and drift.asset_materialization.partition == MONTH
    snapshots = list(real_home.processed_dir.glob("*/*/provenance.json"))
    assert {p.parent.parent.name for p in snapshots} == {"telco", "retail"}
