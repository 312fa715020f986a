"""The retraining sensor's guard: no retraining run while the matured history is too short for
the out-of-time split (early in a replay), with the reason; a later alert retrains once it is
long enough. A failed drift check is recorded by a stand-in for the drift report, so no model
is needed."""

import dagster as dg
import duckdb
from dagster import AssetExecutionContext

from churn_assets.definitions import build_definitions
from churn_assets.defs.monitoring.drift import DRIFT_CHECK
from churn_assets.defs.monitoring.sensors import retraining_blocker
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import DuckDBResource, build_resources
from churn_assets.settings import ChurnSettings

SPINE = "retail_features.fct_training_spine"


def _write_spine(path: str, first: str, last: str) -> None:
    with duckdb.connect(path) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS retail_features")
        con.execute(
            f"CREATE OR REPLACE TABLE {SPINE} AS SELECT '12345' AS customer_id, "
            "CAST(d AS DATE) AS observation_date, 0 AS churned FROM range(DATE "
            f"'{first}', DATE '{last}' + INTERVAL 1 DAY, INTERVAL 1 MONTH) AS t(d)"
        )


def test_retraining_waits_for_enough_matured_history(
    specs: dict[str, DatasetSpec], settings: ChurnSettings
) -> None:
    """Early in a replay an alert must not launch a retraining run that cannot split the data:
    the sensor skips with the reason, and retrains on the next alert once history suffices."""
    spec = specs["retail"]
    resource = DuckDBResource(path=settings.duckdb_path)
    reason = retraining_blocker(spec, resource)
    assert reason is not None and reason.startswith(f"{resource.path} cannot be read yet")
    with resource.connect() as con:
        con.execute("CREATE SCHEMA retail_features")
    assert retraining_blocker(spec, resource) == f"{SPINE} does not exist yet"
    _write_spine(settings.duckdb_path, "2010-03-01", "2010-11-01")
    reason = retraining_blocker(spec, resource)
    assert reason is not None and "not enough matured history" in reason

    # The real sensor, on a fresh instance and this early store.
    @dg.asset(
        name=spec.key("drift_report"),
        check_specs=[dg.AssetCheckSpec(DRIFT_CHECK, asset=spec.key("drift_report"))],
    )
    def drift_report(context: AssetExecutionContext) -> dg.MaterializeResult:
        month = context.run.tags["month"]
        return dg.MaterializeResult(
            check_results=[
                dg.AssetCheckResult(
                    check_name=DRIFT_CHECK,
                    passed=False,
                    metadata={"observation_date": month, "model_version": "1"},
                )
            ]
        )

    sensor = build_definitions(settings).get_sensor_def(spec.key("retraining_sensor"))
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> dg.SensorResult:
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources=build_resources(settings)
            )
            result = sensor(context)
            assert isinstance(result, dg.SensorResult)
            return result

        def alert(month: str) -> None:
            assert dg.materialize([drift_report], instance=instance, tags={"month": month}).success

        baseline = tick(None)
        alert("2011-01-01")
        blocked = tick(baseline.cursor)
        assert not blocked.run_requests
        assert blocked.skip_reason is not None
        assert "not enough matured history" in str(blocked.skip_reason)

        _write_spine(settings.duckdb_path, "2010-03-01", "2010-12-01")
        assert retraining_blocker(spec, resource) is None
        alert("2011-02-01")
        launched = tick(blocked.cursor)
        (request,) = launched.run_requests or []
        assert request.run_key == "retrain:drift_alert:2011-02-01:v1"
