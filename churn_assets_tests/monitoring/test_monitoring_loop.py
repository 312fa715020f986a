"""The monitoring loop on a synthetic feature store with a champion from the real training assets.

Order matters inside this module (one shared instance): normal months first, the replayed
month next, the deliberately shifted month (drift alert → retraining) last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from mlflow import MlflowClient

from churn_assets import replay
from churn_assets.defs.monitoring import sensors
from churn_assets.lib import features_registry
from churn_assets.lib.registry_models import CHAMPION, registered_model_name
from churn_assets.resources import AlertNotifier, DuckDBResource
from churn_assets.settings import REPO_ROOT
from churn_assets_tests.monitoring.conftest import MonitoringEnv
from churn_assets_tests.monitoring.fixtures import CUSTOMERS, FEATURE_MODEL, NUMERIC

pytestmark = pytest.mark.xdist_group("monitoring")

MODEL = registered_model_name("retail")


def query(env: MonitoringEnv, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(env.settings.duckdb_path), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    assert len(events) == 1, asset
    return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}


def check_passed(result: dg.ExecuteInProcessResult, name: str) -> bool:
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation.passed


def test_scoring_replaces_only_its_month(monitoring_env: MonitoringEnv) -> None:
    assert monitoring_env.month("2011-06-01").success
    assert monitoring_env.month("2011-07-01").success
    july = query(
        monitoring_env,
        "SELECT * FROM monitoring.retail_scores WHERE observation_date = '2011-07-01'",
    )
    assert monitoring_env.month("2011-06-01").success  # re-score June only

    scores = query(monitoring_env, "SELECT * FROM monitoring.retail_scores")
    assert scores.group_by("observation_date").len().sort("observation_date")["len"].to_list() == [
        CUSTOMERS,
        CUSTOMERS,
    ]
    assert scores.select("observation_date", "customer_id").is_duplicated().sum() == 0
    july_after = scores.filter(pl.col("observation_date") == date(2011, 7, 1))
    assert july_after.sort("customer_id").equals(july.sort("customer_id"))  # untouched
    assert set(scores["risk_decile"].unique()) == set(range(1, 11))
    top = scores.filter(pl.col("risk_decile") == 10)["churn_probability"].min()
    bottom = scores.filter(pl.col("risk_decile") == 1)["churn_probability"].max()
    assert top >= bottom
    for column in ("driver_1", "driver_2", "driver_3"):
        assert set(scores[column].unique()) <= set(NUMERIC)
    assert scores["model_version"].unique().to_list() == ["1"]


def test_drift_report_html_metadata_mlflow_and_check(monitoring_env: MonitoringEnv) -> None:
    result = monitoring_env.month("2011-08-01")
    metadata = materialization(result, "retail_drift_report")
    assert metadata["status"] in ("ok", "warn")
    assert check_passed(result, "drift_alert")
    html = Path(str(metadata["report_path"])).read_text()
    monitored = [c for c in NUMERIC if c not in features_registry.calendar_features(FEATURE_MODEL)]
    assert "observation_month" not in monitored
    assert html.count("data:image/png;base64,") == len(monitored) + 1  # every feature + score
    table = metadata["drift_table"]
    assert {r.data["test"] for r in table.records} == {"psi", "ks", "volume_change"}  # type: ignore[attr-defined]
    run = MlflowClient().get_run(str(metadata["mlflow_run_id"]))
    assert run.data.tags["model_version"] == "1"
    local = MlflowClient().download_artifacts(run.info.run_id, "drift_report.json")
    report = json.loads(Path(local).read_text())
    assert report["thresholds"] == {
        "psi_warn": 0.1,
        "psi_alert": 0.2,
        "share_drifted_alert": 0.3,
        "volume_warn": 0.15,
        "volume_alert": 0.3,
    }
    assert len(report["features"]) == len(monitored)


def test_realized_performance_only_once_labels_mature(monitoring_env: MonitoringEnv) -> None:
    mature = materialization(monitoring_env.month("2011-06-01"), "retail_realized_performance")
    assert mature["status"] == "mature"
    assert 0.6 < float(mature["realized_roc_auc"]) <= 1.0  # type: ignore[arg-type]
    assert float(mature["realized_top_decile_lift"]) > 1.0  # type: ignore[arg-type]
    assert mature["evaluation_roc_auc"] is not None
    immature = materialization(monitoring_env.month("2011-10-01"), "retail_realized_performance")
    assert immature["status"] == "immature"


def _tick(env: MonitoringEnv, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=env.instance, cursor=cursor, resources={"notifier": AlertNotifier()}
    )
    result = sensors.retail_landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _ingest_succeeded(env: MonitoringEnv, tags: dict[str, str]) -> dg.RunStatusSensorContext:
    """A finished run carrying the ingest tags, as the run-status sensor would see it."""

    @dg.op
    def ingest() -> None: ...

    @dg.job(name="retail_ingest_job")
    def stand_in() -> None:
        ingest()

    result = stand_in.execute_in_process(instance=env.instance, tags=tags)
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    return dg.build_run_status_sensor_context(
        sensor_name="retail_month_after_ingest_sensor",
        dagster_event=event,
        dagster_instance=env.instance,
        dagster_run=result.dagster_run,
    )


def test_replayed_month_is_ingested_once_and_becomes_scoreable(
    monitoring_env: MonitoringEnv,
) -> None:
    settings = monitoring_env.settings
    replay.start(settings, date(2011, 1, 1))
    first = _tick(monitoring_env, None)
    assert [r.run_key for r in first.run_requests or []] == [
        f"replay-session:{sensors.replay_session(settings)}"
    ]

    landed = replay.next_month(settings)
    assert landed is not None and landed.name == "retail_events_2011-01.parquet"
    second = _tick(monitoring_env, first.cursor)
    (request,) = second.run_requests or []
    assert request.tags[sensors.TAG_MONTH] == "2011-02-01"
    assert request.run_key and request.run_key.endswith(request.tags[sensors.TAG_SHA256])
    assert (settings.accepted_dir / landed.name).exists() and not landed.exists()

    follow_up = sensors.retail_month_after_ingest_sensor(
        _ingest_succeeded(monitoring_env, request.tags)
    )
    assert sorted((r.job_name, r.partition_key) for r in follow_up) == [
        # T + 90 days within the 45 days before the as-of date 2011-01-31.
        ("retail_label_maturity_job", "2010-10-01"),
        ("retail_label_maturity_job", "2010-11-01"),
        ("retail_monthly_monitoring_job", "2011-02-01"),
    ]
    assert monitoring_env.month("2011-02-01").success
    for table in ("features.retail_features_monthly", "monitoring.retail_scores"):
        counts = query(
            monitoring_env,
            f"SELECT count(*) AS n FROM {table} WHERE observation_date = '2011-02-01'",
        )
        assert counts["n"][0] == CUSTOMERS
    assert (settings.reports_dir / "retail_drift" / "retail_drift_2011-02-01.html").exists()

    shutil.copy(settings.accepted_dir / landed.name, landed)  # the same file arrives again
    third = _tick(monitoring_env, second.cursor)
    assert not third.run_requests
    reason = (settings.quarantine_dir / f"{landed.name}.reason.txt").read_text()
    assert reason.startswith("duplicate")
    replay.reset(settings)


def _retraining_tick(env: MonitoringEnv, cursor: str | None) -> dg.SensorResult:
    result = sensors.retail_retraining_sensor(
        dg.build_sensor_context(
            instance=env.instance,
            cursor=cursor,
            resources={"duckdb": DuckDBResource(path=str(env.settings.duckdb_path))},
        )
    )
    assert isinstance(result, dg.SensorResult)
    return result


def test_drift_alert_launches_exactly_one_retraining(monitoring_env: MonitoringEnv) -> None:
    quiet = _retraining_tick(monitoring_env, None)
    assert not quiet.run_requests  # every month so far was unchanged data: no retraining

    shifted = monitoring_env.month("2011-12-01")  # the synthetic Nov–Dec peak
    assert not check_passed(shifted, "drift_alert")
    assert materialization(shifted, "retail_drift_report")["status"] == "alert"

    alerted = _retraining_tick(monitoring_env, quiet.cursor)
    (request,) = alerted.run_requests or []
    assert request.run_key == "retrain:drift_alert:2011-12-01:v1"
    assert not _retraining_tick(monitoring_env, alerted.cursor).run_requests  # once per alert

    retrained = monitoring_env.train(tags=dict(request.tags))
    assert retrained.success
    client = MlflowClient()
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    assert versions == [1, 2]
    gate = materialization(retrained, "retail_model_promotion")
    assert gate["challenger_version"] == "2"
    decision = client.get_model_version(MODEL, "2").tags["promotion.decision"]
    champion = str(client.get_model_version_by_alias(MODEL, CHAMPION).version)
    assert (decision, champion) in {("champion", "2"), ("challenger", "1")}


def test_retraining_waits_for_enough_matured_history(tmp_path: Path) -> None:
    """Early in a replay an alert must not launch a retraining run that cannot split the data."""
    resource = DuckDBResource(path=str(tmp_path / "early.duckdb"))
    assert sensors.retraining_blocker(resource) == f"{resource.path} does not exist yet"
    with resource.connect() as con:
        con.execute("CREATE SCHEMA features")
    assert sensors.retraining_blocker(resource) == f"{sensors.TRAINING_SPINE} does not exist yet"
    with resource.connect() as con:
        con.execute(
            f"CREATE TABLE {sensors.TRAINING_SPINE} AS SELECT DISTINCT "
            "CAST(d AS DATE) AS observation_date FROM range(DATE '2010-03-01', "
            "DATE '2010-12-01', INTERVAL 1 MONTH) AS t(d)"
        )
    reason = sensors.retraining_blocker(resource)
    assert reason is not None and "not enough matured history" in reason
    with resource.connect() as con:
        con.execute(f"INSERT INTO {sensors.TRAINING_SPINE} VALUES (DATE '2010-12-01')")
    assert sensors.retraining_blocker(resource) is None


RUN_MONTH = """
import sys
import dagster as dg
from churn_assets.defs.features.monthly import retail_features_monthly
from churn_assets.defs.monitoring.drift import retail_drift_report
from churn_assets.defs.monitoring.scoring import retail_scores
from churn_assets.resources import build_resources
with dg.DagsterInstance.get() as instance:
    result = dg.materialize(
        [retail_features_monthly, retail_scores, retail_drift_report],
        partition_key=sys.argv[1], instance=instance, resources=build_resources(),
        raise_on_error=False,
    )
sys.exit(0 if result.success else 1)
"""


def test_two_concurrent_processes_write_duckdb_without_lock_errors(
    monitoring_env: MonitoringEnv, tmp_path: Path
) -> None:
    """Two processes launch a month each at once, on an instance with the project's
    ``dagster.yaml``: the ``duckdb`` pool schedules their DuckDB steps and the resource's file
    lock covers the pool's sqlite race, so neither hits DuckDB's single-writer lock."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    dg.DagsterInstance.from_config(str(home)).dispose()  # create the storage once, as `make` does
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RUN_MONTH, month],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for month in ("2011-03-01", "2011-04-01")
    ]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
        assert "Could not set lock" not in output
    counts = query(
        monitoring_env,
        "SELECT observation_date, count(*) AS n FROM monitoring.retail_scores "
        "WHERE observation_date IN ('2011-03-01', '2011-04-01') GROUP BY 1",
    )
    assert sorted(counts["n"].to_list()) == [CUSTOMERS, CUSTOMERS]
