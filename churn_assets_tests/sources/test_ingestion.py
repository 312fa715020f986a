"""Ingestion that can never double-count: idempotence on events, the overlap policy, the
calendar that fits the data, alerts when automation fails, and a Dagster home anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import duckdb
import polars as pl
import pytest

from churn_assets.definitions import build_definitions
from churn_assets.lib.contracts import read_file
from churn_assets.lib.datasets import DatasetSpec, Observation, observation_calendar
from churn_assets.lib.ingest import apply_delivery, shrink_refusal
from churn_assets.partitions import partitions_name
from churn_assets.resources import build_resources
from churn_assets.settings import REPO_ROOT, ChurnSettings
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.sources import samples

pytestmark = pytest.mark.xdist_group("ingestion")


def _ingest(
    defs: dg.Definitions,
    spec: DatasetSpec,
    instance: dg.DagsterInstance,
    deliveries: list[str],
    with_features: bool = True,
) -> dg.ExecuteInProcessResult:
    """The ingest job (raw table, then the dbt models), or the raw load alone."""
    raw = spec.key("raw_events")
    job = (
        defs.resolve_job_def(spec.key("ingest_job"))
        if with_features
        else dg.Definitions.merge(
            defs, dg.Definitions(jobs=[dg.define_asset_job("raw_only", selection=[raw])])
        ).resolve_job_def("raw_only")
    )
    return job.execute_in_process(
        instance=instance,
        run_config={"ops": {raw: {"config": {"deliveries": deliveries}}}},
        raise_on_error=False,
    )


def _digest(settings: ChurnSettings, sql: str) -> str:
    con = duckdb.connect(settings.duckdb_path, read_only=True)
    try:
        return str(con.execute(f"SELECT count(*), sum(hash(t)) FROM ({sql}) AS t").fetchone())
    finally:
        con.close()


def test_the_same_month_in_three_encodings_changes_nothing(tmp_path: Path) -> None:
    """July delivered as the retailer's parquet, again re-compressed and renamed, again as CSV:
    the first adds July, the next two are reported as duplicates and change no row of the raw
    table, and the daily tiles dbt builds from it are identical."""
    settings = settings_for(tmp_path / "home")
    spec, july = samples.retail_sample(tmp_path)
    defs = build_definitions(settings, [spec])
    first = tmp_path / "july.parquet"
    july.write_parquet(first, compression="zstd")
    again = tmp_path / "retail_2010_07_resent.parquet"
    july.write_parquet(again, compression="snappy")
    as_csv = tmp_path / "july.csv"
    july.with_columns(pl.col("invoice_ts").dt.strftime("%Y-%m-%d %H:%M:%S")).write_csv(as_csv)
    assert len({p.read_bytes() for p in (first, again, as_csv)}) == 3  # three different encodings
    tiles = "SELECT * FROM retail_intermediate.int_daily_tiles"
    raw = "SELECT * FROM retail_raw.events"
    with dg.instance_for_test() as instance:
        assert _ingest(defs, spec, instance, [str(first)]).success
        before = (_digest(settings, raw), _digest(settings, tiles))
        for delivery in (again, as_csv):
            result = _ingest(defs, spec, instance, [str(delivery)], with_features=False)
            assert result.success
            event = result.asset_materializations_for_node(spec.key("raw_events"))[0]
            assert event.metadata["duplicates_skipped"].value == july.height
            assert _digest(settings, raw) == before[0]
        assert _ingest(defs, spec, instance, []).success  # dbt rebuilds the tiles from it
        assert (_digest(settings, raw), _digest(settings, tiles)) == before
    con = duckdb.connect(settings.duckdb_path, read_only=True)
    try:
        (july_rows,) = con.execute(
            "SELECT count(*) FROM retail_raw.events WHERE event_ts >= '2010-07-01'"
        ).fetchone() or (0,)
    finally:
        con.close()
    assert july_rows == july.height  # counted once


def test_overlap_is_refused_or_replaces_whole_days(tmp_path: Path) -> None:
    spec, july = samples.retail_sample(tmp_path)
    history = read_file(spec, spec.source_files()[0])
    june = pl.read_parquet(spec.source_files()[0]).filter(
        pl.col("invoice_ts") >= datetime(2010, 6, 28)
    )
    corrected = june.with_columns(
        pl.when(pl.int_range(pl.len()) == 0)
        .then(99)
        .otherwise(pl.col("quantity"))
        .alias("quantity")
    )
    path = tmp_path / "june_corrected.parquet"
    corrected.write_parquet(path)
    delivery = read_file(spec, path)
    with pytest.raises(ValueError, match="overlaps the loaded history"):
        apply_delivery(spec, history, delivery, str(path))
    replacing = spec.model_copy(
        update={"events": spec.ev.model_copy(update={"overlap_policy": "replace_days"})}
    )
    replaced, report = apply_delivery(replacing, history, delivery, str(path))
    day = corrected["invoice_ts"][0].date()
    assert report.replaced_days == [day.isoformat()]
    on_day = pl.col("event_ts").dt.date() == day
    assert replaced.filter(on_day).sort("event_id").equals(delivery.filter(on_day).sort("event_id"))
    assert replaced.filter(~on_day).height == history.filter(~on_day).height
    # a day-free append (the next month) is never an overlap
    appended, report = apply_delivery(
        spec, history, read_file(spec, _parquet(tmp_path, july)), "july"
    )
    assert report.new_events == july.height and appended.height == history.height + july.height


def _parquet(folder: Path, frame: pl.DataFrame) -> Path:
    path = folder / "july.parquet"
    frame.write_parquet(path)
    return path


def test_the_shrink_guard() -> None:
    assert shrink_refusal(None, 0, 0.5) is not None  # never an empty table
    assert shrink_refusal(1000, 400, 0.5) is not None
    assert shrink_refusal(1000, 600, 0.5) is None
    assert shrink_refusal(None, 10, 0.5) is None  # a first load may be any size


def test_the_calendar_fits_the_data(specs: dict[str, DatasetSpec]) -> None:
    retail = specs["retail"]
    dates, warnings = observation_calendar(
        retail, datetime(2009, 12, 1, 7, 45), datetime(2011, 12, 9, 12, 50)
    )
    assert (dates[0], dates[-1], len(dates)) == (date(2010, 3, 1), date(2011, 12, 1), 22)
    assert warnings == []
    declared = retail.model_copy(
        update={
            "events": retail.ev.model_copy(
                update={"observation": Observation(start=date(2010, 6, 1), end=date(2012, 6, 1))}
            )
        }
    )
    dates, warnings = observation_calendar(
        declared, datetime(2009, 12, 1, 7, 45), datetime(2011, 12, 9, 12, 50)
    )
    assert (dates[0], dates[-1]) == (date(2010, 6, 1), date(2011, 12, 1))
    assert len(warnings) == 1 and "clipped to 2011-12-01" in warnings[0]
    # the newest observation date is the day after the last event, plus the declared grace
    grace = retail.ev.observation.grace_days
    last = datetime(2011, 12, 1) - timedelta(days=1 + grace)
    dates, _ = observation_calendar(retail, datetime(2009, 12, 1), last)
    assert dates[-1] == date(2011, 12, 1)
    dates, _ = observation_calendar(retail, datetime(2009, 12, 1), last - timedelta(days=1))
    assert dates[-1] == date(2011, 11, 1)
    # ... or a replay's as-of date, before which history is complete by definition
    dates, _ = observation_calendar(
        retail, datetime(2009, 12, 1), datetime(2010, 12, 23, 17, 0), known_until=date(2011, 1, 1)
    )
    assert dates[-1] == date(2011, 1, 1)


def test_the_raw_load_makes_the_calendar_into_partitions(tmp_path: Path) -> None:
    """Observation dates past the data are never partitions: running "as of" an earlier date
    (a replay) removes them, and the next delivery brings them back."""
    spec, july = samples.retail_sample(tmp_path)
    path = tmp_path / "july.parquet"
    july.write_parquet(path)

    def load(as_of: str, deliveries: list[str]) -> list[str]:
        settings = settings_for(tmp_path / "home", as_of=as_of)
        raw = build_definitions(settings, [spec]).resolve_assets_def(spec.key("raw_events"))
        config = {
            "ops": {
                spec.key("raw_events"): {"config": {"deliveries": deliveries, "allow_shrink": True}}
            }
        }
        assert dg.materialize([raw], instance=instance, run_config=config).success
        return instance.get_dynamic_partitions(partitions_name(spec))

    with dg.instance_for_test() as instance:
        # the archive starts on 2010-01-04: 2010-05-01 is the first date with 90 days behind it;
        # its last event is on 2010-06-30, so 2010-07-01 is the newest date with complete inputs
        assert load("", []) == ["2010-05-01", "2010-06-01", "2010-07-01"]
        assert load("2010-06-01", []) == ["2010-05-01", "2010-06-01"]
        # July's last event is on 2010-07-30: August 1st is covered (within the grace days)
        assert load("2010-06-01", [str(path)])[-1] == "2010-08-01"


class _Webhook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    _Webhook.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Webhook.received
    server.shutdown()


def test_a_failing_sensor_tick_and_a_failed_run_reach_the_webhook(
    tmp_path: Path, specs: dict[str, DatasetSpec], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    landing = tmp_path / "not_a_folder"
    settings = settings_for(tmp_path / "home", alert_webhook_url=url, landing_dir=str(landing))
    landing.rmdir()
    landing.write_text("a file where the landing folder should be")
    defs = build_definitions(settings, [specs["telco"]])
    sensor = defs.get_sensor_def("telco_landing_sensor")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=build_resources(settings))
        with pytest.raises(Exception, match="not_a_folder"):
            sensor(context)
        (tick,) = received
        assert tick["event"] == "sensor_tick_failed" and tick["sensor"] == "telco_landing_sensor"
        assert tick["link"].endswith("/automation/sensors/telco_landing_sensor")

        missing = tmp_path / "missing.csv"
        run = defs.resolve_job_def("telco_ingest_job").execute_in_process(
            instance=instance,
            run_config={"ops": {"telco_raw_customers": {"config": {"deliveries": [str(missing)]}}}},
            raise_on_error=False,
        )
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        alert = defs.get_sensor_def("run_failure_alert_sensor")
        alert(
            dg.build_run_status_sensor_context(
                sensor_name=alert.name,
                dagster_instance=instance,
                dagster_run=run.dagster_run,
                dagster_event=failure,
                resources=build_resources(settings),
            ).for_run_failure()
        )
    run_alert = received[-1]
    assert run_alert["event"] == "run_failed" and run_alert["job"] == "telco_ingest_job"
    assert run_alert["link"] == f"{settings.ui_base_url}/runs/{run.run_id}"


def test_make_run_works_with_any_dagster_home(tmp_path: Path) -> None:
    """A relative DAGSTER_HOME gets the project's instance config as a file, not a link that
    dangles from wherever the user points it."""
    env = {**os.environ, "DAGSTER_HOME": "relative/home"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from churn_assets.cli import ensure_dagster_home; print(ensure_dagster_home())",
        ],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    home = Path(result.stdout.strip())
    assert home == (tmp_path / "relative" / "home").resolve()
    config = home / "dagster.yaml"
    assert config.is_file() and not config.is_symlink()
    assert config.read_text() == (REPO_ROOT / "dagster.yaml").read_text()
