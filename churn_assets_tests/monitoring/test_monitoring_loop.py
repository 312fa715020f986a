"""The monitoring loop on a synthetic feature store with a champion from the real training assets.

Order matters inside this module (one shared instance): normal months first, the month a
delivery makes observable next, the deliberately shifted month (drift alert → retraining) last.
Only tests about drift run the whole monitoring job; the others run the steps they are about.
The retraining sensor's history guard and the concurrent writers have modules of their own
(they need no trained champion), so they run beside this one on the other worker.
"""

import json
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from churn_assets.defs.monitoring.drift import DRIFT_CHECK
from churn_assets.defs.monitoring.sensors import TAG_TRIGGER
from churn_assets.defs.sources.landing import TAG_DATA_AS_OF, TAG_DELIVERY, TAG_MONTH
from churn_assets.lib.drift_report import PLOTTED
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.registry_models import CHAMPION, registered_model_name
from churn_assets_tests.monitoring.conftest import MonitoringEnv
from churn_assets_tests.monitoring.fixtures import CUSTOMERS, SIGNAL_FEATURES

pytestmark = pytest.mark.xdist_group("monitoring")

MODEL = registered_model_name("retail")
SCORES = "retail_monitoring.scores"


def query(env: MonitoringEnv, sql: str) -> pl.DataFrame:
    with duckdb.connect(env.settings.duckdb_path, read_only=True) as con:
        return con.sql(sql).pl()


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    assert len(events) == 1, asset
    return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}


def check_passed(result: dg.ExecuteInProcessResult, name: str) -> bool:
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation.passed


def monitored_features(env: MonitoringEnv) -> list[str]:
    """The champion's features less the calendar ones (one value per month: never compared).
    The synthetic store carries signal in SIGNAL_FEATURES only; the training set left every
    constant column out, so the champion was trained on those and the month number."""
    declared = feature_set(env.spec)
    client = env.mlflow()
    version = client.get_model_version_by_alias(MODEL, CHAMPION)
    trained = json.loads(
        client.get_run(str(version.run_id)).data.tags["training_set.numeric_features"]
    )
    assert trained == [f for f in declared.numeric if f in (*SIGNAL_FEATURES, "observation_month")]
    monitored = [c for c in trained if c not in declared.calendar]
    assert "observation_month" in declared.calendar and "observation_month" not in monitored
    return monitored


def test_scoring_replaces_only_its_month(monitoring_env: MonitoringEnv) -> None:
    assert monitoring_env.score("2011-06-01").success
    assert monitoring_env.score("2011-07-01").success
    july = query(monitoring_env, f"SELECT * FROM {SCORES} WHERE observation_date = '2011-07-01'")
    assert monitoring_env.score("2011-06-01").success  # re-score June only

    scores = query(monitoring_env, f"SELECT * FROM {SCORES}")
    assert scores.group_by("observation_date").len().sort("observation_date")["len"].to_list() == [
        CUSTOMERS,
        CUSTOMERS,
    ]
    assert scores.select("observation_date", "customer_id").is_duplicated().sum() == 0
    assert scores.schema["customer_id"] == pl.String
    july_after = scores.filter(pl.col("observation_date") == date(2011, 7, 1))
    assert july_after.sort("customer_id").equals(july.sort("customer_id"))  # untouched
    assert set(scores["risk_decile"].unique()) == set(range(1, 11))
    top = scores.filter(pl.col("risk_decile") == 10)["churn_probability"].min()
    bottom = scores.filter(pl.col("risk_decile") == 1)["churn_probability"].max()
    assert top >= bottom  # type: ignore[operator]
    for column in ("driver_1", "driver_2", "driver_3"):
        assert set(scores[column].unique()) <= set(SIGNAL_FEATURES) | {"observation_month"}
    # Drivers are ranked by the size of their signed contribution.
    assert (scores["driver_1_shap"].abs() >= scores["driver_2_shap"].abs()).all()
    assert (scores["driver_2_shap"].abs() >= scores["driver_3_shap"].abs()).all()
    assert scores["model_version"].unique().to_list() == ["1"]
    assert scores["model_name"].unique().to_list() == [MODEL]


def test_drift_report_html_metadata_mlflow_and_check(monitoring_env: MonitoringEnv) -> None:
    result = monitoring_env.month("2011-08-01")
    metadata = materialization(result, "retail_drift_report")
    assert metadata["status"] in ("ok", "warn")
    assert check_passed(result, DRIFT_CHECK)
    monitored = monitored_features(monitoring_env)
    html = Path(str(metadata["report_path"])).read_text()
    assert Path(str(metadata["report_path"])) == (
        Path(monitoring_env.settings.reports_dir) / "retail" / "drift" / "drift_2011-08-01.html"
    )
    assert html.count("data:image/png;base64,") == min(
        PLOTTED, len(monitored) + 1
    )  # the largest shifts
    plots = str(metadata["plots"])
    assert plots.count("data:image/png;base64,") == min(PLOTTED, len(monitored) + 1)
    assert plots.startswith("![churn_probability.png]")  # the score is always plotted first

    table = metadata["drift_table"]
    records = [r.data for r in table.records]  # type: ignore[attr-defined]
    assert records[0]["feature"] == "churn_probability"
    assert {r["feature"] for r in records} == {
        "churn_probability",
        *monitored,
        "customers (volume change)",
    }
    rounded = [v for r in records for v in r.values() if isinstance(v, float)]
    assert rounded and all(v == round(v, 4) for v in rounded)
    volume = next(r for r in records if r["feature"] == "customers (volume change)")
    assert volume["psi"] == 0.0 and volume["status"] == "ok"  # same customers every month
    history = feature_set(monitoring_env.spec).grows_with_history
    assert {r["feature"] for r in records if r["alerting"] is False} == history & set(monitored)

    client = monitoring_env.mlflow()
    run = client.get_run(str(metadata["mlflow_run_id"]))
    assert run.data.tags["model_version"] == "1"
    assert run.data.tags["observation_date"] == "2011-08-01"
    local = client.download_artifacts(run.info.run_id, "drift_report.json")
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
    """The label-maturity job (what the after-ingest sensor launches) measures a scored date
    whose labels matured, and reports an immature one as such."""
    assert monitoring_env.score("2011-06-01").success
    mature = materialization(monitoring_env.maturity("2011-06-01"), "retail_realized_performance")
    assert mature["status"] == "mature"
    assert mature["labelled_customers"] == CUSTOMERS
    assert mature["model_version"] == "1"
    assert 0.6 < float(mature["realized_roc_auc"]) <= 1.0  # type: ignore[arg-type]
    assert float(mature["realized_top_decile_lift"]) > 1.0  # type: ignore[arg-type]
    assert mature["evaluation_roc_auc"] is not None
    # 2011-10-01 + 90 days is after the last event (2011-12-09): is_mature is false.
    immature = materialization(monitoring_env.maturity("2011-10-01"), "retail_realized_performance")
    assert immature["status"] == "immature"
    assert "realized_roc_auc" not in immature


def test_a_range_of_dates_is_one_run_where_each_date_keeps_its_own_figures(
    monitoring_env: MonitoringEnv,
) -> None:
    """A backfill of three months is one run (single-run backfill policy): every date is scored
    and reported as if run alone, its materialization carries its own figures, and the checks
    judge the newest date (the state the retraining sensor acts on)."""
    months = ["2011-03-01", "2011-04-01", "2011-05-01"]
    result = monitoring_env.run_job(
        monitoring_env.spec.key("monitoring_job"),
        tags={
            "dagster/asset_partition_range_start": months[0],
            "dagster/asset_partition_range_end": months[-1],
        },
    )
    assert result.success
    counts = query(
        monitoring_env,
        f"SELECT observation_date::VARCHAR AS day, count(*) AS n FROM {SCORES} "
        f"WHERE observation_date BETWEEN '{months[0]}' AND '{months[-1]}' GROUP BY 1 ORDER BY 1",
    )
    assert counts.rows() == [(m, CUSTOMERS) for m in months]
    for asset in ("retail_scores", "retail_drift_report", "retail_realized_performance"):
        events = [
            e
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey(asset)
        ]
        assert sorted(str(e.partition) for e in events) == months, asset
    drift = {
        str(e.partition): {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("retail_drift_report")
    }
    for month in months:
        assert drift[month]["observation_date"] == month
        assert Path(str(drift[month]["report_path"])).name == f"drift_{month}.html"
        assert Path(str(drift[month]["report_path"])).exists()
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == DRIFT_CHECK]
    assert evaluation.metadata["observation_date"].value == months[-1]
    assert evaluation.passed == (drift[months[-1]]["status"] != "alert")


def _ingest_succeeded(env: MonitoringEnv, tags: dict[str, str]) -> dg.RunStatusSensorContext:
    """A finished run carrying the ingest tags, as the run-status sensor would see it."""

    @dg.op
    def ingest() -> None: ...

    @dg.job(name=env.spec.key("ingest_job"))
    def stand_in() -> None:
        ingest()

    result = stand_in.execute_in_process(instance=env.instance, tags=tags)
    event = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    return dg.build_run_status_sensor_context(
        sensor_name=env.spec.key("month_after_ingest_sensor"),
        dagster_event=event,
        dagster_instance=env.instance,
        dagster_run=result.dagster_run,
    )


def _after_ingest(env: MonitoringEnv, tags: dict[str, str]) -> list[dg.RunRequest]:
    """The real after-ingest sensor's answer to a succeeded ingest run with these tags."""
    sensor = env.defs.get_sensor_def(env.spec.key("month_after_ingest_sensor"))
    result = sensor(_ingest_succeeded(env, tags))
    assert isinstance(result, list)
    requests = [r for r in result if isinstance(r, dg.RunRequest)]
    assert len(requests) == len(result)
    return requests


def test_after_ingest_sensor_launches_the_new_month_and_the_matured_ones(
    monitoring_env: MonitoringEnv,
) -> None:
    """A delivery of January 2011 (newest event 2011-01-31) makes 2011-02-01 observable and
    matures every date T with T + 90 days in the 45 days before it."""
    env = monitoring_env
    delivery = "/landing/retail/pending/retail_events_2011-01.parquet"
    tags = {TAG_MONTH: "2011-02-01", TAG_DATA_AS_OF: "2011-01-31T17:15:00", TAG_DELIVERY: delivery}
    requests = _after_ingest(env, tags)
    assert sorted((r.job_name, r.partition_key) for r in requests) == [
        ("retail_label_maturity_job", "2010-10-01"),
        ("retail_label_maturity_job", "2010-11-01"),
        ("retail_monitoring_job", "2011-02-01"),
    ]
    assert len({r.run_key for r in requests}) == 3
    (month,) = [r for r in requests if r.job_name == "retail_monitoring_job"]
    assert month.tags[TAG_DELIVERY] == delivery
    # A run without a month tag (a full reload) launches nothing.
    assert _after_ingest(env, {}) == []

    run = env.run_job(str(month.job_name), partition_key=month.partition_key, tags=month.tags)
    assert run.success
    for table in ("retail_features.features_monthly", SCORES):
        counts = query(
            env, f"SELECT count(*) AS n FROM {table} WHERE observation_date = '2011-02-01'"
        )
        assert counts["n"][0] == CUSTOMERS
    assert (Path(env.settings.reports_dir) / "retail" / "drift" / "drift_2011-02-01.html").exists()
    assert materialization(run, "retail_realized_performance")["status"] == "mature"


def _retraining_tick(env: MonitoringEnv, cursor: str | None) -> dg.SensorResult:
    sensor = env.defs.get_sensor_def(env.spec.key("retraining_sensor"))
    result = sensor(env.sensor_context(cursor))
    assert isinstance(result, dg.SensorResult)
    return result


def test_drift_alert_launches_exactly_one_retraining(monitoring_env: MonitoringEnv) -> None:
    quiet = _retraining_tick(monitoring_env, None)
    assert not quiet.run_requests  # alerts before the sensor's first tick are its baseline
    assert not _retraining_tick(monitoring_env, quiet.cursor).run_requests

    shifted = monitoring_env.month("2011-12-01")  # the synthetic Nov–Dec peak
    assert not check_passed(shifted, DRIFT_CHECK)
    drift = materialization(shifted, "retail_drift_report")
    assert drift["status"] == "alert"
    assert "revenue_90d" in str(drift["drifted_features"])

    alerted = _retraining_tick(monitoring_env, quiet.cursor)
    (request,) = alerted.run_requests or []
    assert request.run_key == "retrain:drift_alert:2011-12-01:v1"
    assert request.tags[TAG_TRIGGER] == "drift_alert@2011-12-01"
    assert not _retraining_tick(monitoring_env, alerted.cursor).run_requests  # once per alert

    retrained = monitoring_env.train(tags=dict(request.tags))
    assert retrained.success
    assert retrained.dagster_run.tags[TAG_TRIGGER] == "drift_alert@2011-12-01"
    client = monitoring_env.mlflow()
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL}'"))
    assert versions == [1, 2]
    gate = materialization(retrained, "retail_model_promotion")
    assert gate["challenger_version"] == "2"
    decision = client.get_model_version(MODEL, "2").tags["promotion.decision"]
    champion = str(client.get_model_version_by_alias(MODEL, CHAMPION).version)
    assert (decision, champion) in {("champion", "2"), ("challenger", "1")}
