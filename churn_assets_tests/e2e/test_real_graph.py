"""One end-to-end materialization of the real graph on the real bundled data.

The same job ``make run`` executes (every unpartitioned asset, then monthly partitions),
with a tiny tuning budget so it stays a test: raw tables → dbt features → training sets →
models → promotion → SHAP, then one observation month of features, scores and drift.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from churn_assets.definitions import defs as load_defs
from churn_assets.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MONTH = "2011-06-01"
FAST_TRAINING = {"n_trials": 2, "max_rounds": 60}


def _run_config(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    ops = {}
    for dataset in ("telco", "retail"):
        node = graph.get(dg.AssetKey(f"{dataset}_xgboost_model"))
        ops[node.assets_def.op.name] = {"config": FAST_TRAINING}
    return {"ops": ops}


def _job(defs: dg.Definitions, name: str, selection: dg.AssetSelection) -> dg.JobDefinition:
    return dg.Definitions.merge(
        defs, dg.Definitions(jobs=[dg.define_asset_job(name, selection=selection)])
    ).resolve_job_def(name)


@pytest.fixture(scope="module")
def real_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Settings, dg.DagsterInstance, dg.Definitions]:
    from churn_assets.settings import get_settings

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHURN_HOME", str(home))
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / '.state' / 'mlflow' / 'mlflow.db'}")
        get_settings.cache_clear()
        settings = get_settings()
        settings.ensure_dirs()
        defs = load_defs()
        instance = dg.DagsterInstance.ephemeral()
        partitioned = dg.AssetSelection.assets(
            *[
                k
                for k in defs.resolve_asset_graph().get_all_asset_keys()
                if defs.resolve_asset_graph().get(k).partitions_def is not None
            ]
        )
        main = _job(defs, "main_job", dg.AssetSelection.all() - partitioned)
        result = main.execute_in_process(instance=instance, run_config=_run_config(defs))
        assert result.success
        monthly = _job(defs, "monthly_job", partitioned)
        assert monthly.execute_in_process(instance=instance, partition_key=MONTH).success
        yield settings, instance, defs
    get_settings.cache_clear()


def test_all_checks_pass_on_real_data(
    real_run: tuple[Settings, dg.DagsterInstance, dg.Definitions],
) -> None:
    _, instance, defs = real_run
    graph = defs.resolve_asset_graph()
    failed = []
    evaluated = 0
    for check_key in graph.asset_check_keys:
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [check_key]
        ).get(check_key)
        if record is None or record.evaluation is None:
            continue
        evaluated += 1
        spec_severity = record.evaluation.severity
        if not record.evaluation.passed and spec_severity == dg.AssetCheckSeverity.ERROR:
            failed.append(check_key.to_user_string())
    assert evaluated > 100
    assert failed == []


def test_real_tables_have_the_documented_shape(
    real_run: tuple[Settings, dg.DagsterInstance, dg.Definitions],
) -> None:
    settings, _, _ = real_run
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        telco = con.execute(
            "SELECT count(*), sum(total_charges_imputed::int) FROM raw.telco_customers"
        ).fetchone()
        retail = con.execute("SELECT count(*) FROM raw.retail_transactions").fetchone()
    assert telco == (7043, 11)
    assert retail == (1_044_847,)


def test_models_registered_and_champion_scores_the_month(
    real_run: tuple[Settings, dg.DagsterInstance, dg.Definitions],
) -> None:
    settings, instance, _ = real_run
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    for name in ("churn-telco", "churn-retail"):
        assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    scores = instance.get_latest_materialization_event(dg.AssetKey("retail_scores"))
    drift = instance.get_latest_materialization_event(dg.AssetKey("retail_drift_report"))
    assert scores is not None and scores.asset_materialization.partition == MONTH
    assert drift is not None and drift.asset_materialization.partition == MONTH
    snapshots = list(Path(settings.processed_dir).glob("*/*/provenance.json"))
    assert {p.parent.parent.name for p in snapshots} == {"telco", "retail"}
