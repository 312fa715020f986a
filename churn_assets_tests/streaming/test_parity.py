"""The stream's guarantees on the real data, in the suite's budget (the batch side is built
once per module by the real contract and dbt models):

* the last week of November 2011, streamed from the batch state through a worker process
  SIGKILLed twice, gives every customer the batch's features and score as of 2011-12-01 (all
  of November with five kills and two consumers: ``make parity-stream``);
* the event-stream asset hands the online state over to the batch build and carries the
  events streamed since its as-of: the rebuilt state equals the one the worker built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from churn_assets.defs.serving.stream import build_event_stream
from churn_assets.lib import online_store
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.events import encode
from churn_assets.lib.stream.tiles import Knobs, derive_frame
from churn_assets.resources import AlertNotifier, DuckDBResource, RedisResource
from churn_assets.serving.models import ServedModel
from churn_assets.streaming.bootstrap import bootstrap
from churn_assets.streaming.config import StreamConfig
from churn_assets.streaming.producer import publish
from churn_assets.streaming.worker import Worker
from churn_assets_tests.redis_server import running_redis
from churn_assets_tests.streaming import real_data

pytestmark = pytest.mark.xdist_group("stream_real_data")

WEEK_START = date(2011, 11, 24)


@dataclass(frozen=True)
class RealBatch:
    spec: DatasetSpec
    root: Path
    duckdb_path: Path
    tracking_uri: str


@pytest.fixture(scope="module")
def real_batch(
    tmp_path_factory: pytest.TempPathFactory, specs: dict[str, DatasetSpec]
) -> RealBatch:
    root = tmp_path_factory.mktemp("stream_real")
    spec = specs["retail"]
    duckdb_path = real_data.build_batch(spec, root)
    mlflow, _ = real_data.register_champion_from_batch(
        spec, duckdb_path, root, tmp_path_factory.getbasetemp()
    )
    return RealBatch(spec, root, duckdb_path, mlflow.tracking_uri)


def test_last_week_of_november_with_kills_equals_the_batch(
    real_batch: RealBatch, tmp_path: Path
) -> None:
    with running_redis(tmp_path / "redis") as server:
        env = {
            "CHURN_HOME": str(tmp_path),
            "CHURN_REDIS_URL": server.url,
            "CHURN_MLFLOW_TRACKING_URI": real_batch.tracking_uri,
            "CHURN_DUCKDB_PATH": str(real_batch.duckdb_path),
            "CHURN_STREAM_CLAIM_IDLE_MS": "1000",
            "OMP_NUM_THREADS": "1",
        }
        report = real_data.stream_with_faults(
            real_batch.spec,
            real_batch.duckdb_path,
            server.client(),
            env,
            tmp_path,
            start=WEEK_START,
            kills=2,
        )
    assert report.kills == 2
    assert report.counted > 10_000 and report.applied == report.counted, report.lines()
    assert report.feature_mismatches == [], report.feature_mismatches[:10]
    assert report.customers > 5000
    assert report.scores > 500 and report.score_mismatches == []


class NoChampion:
    def version(self) -> None:
        return None

    def load(self, version: str) -> ServedModel:
        raise AssertionError("no champion to load")


def test_asset_hands_over_to_the_batch_and_carries_streamed_events(
    real_batch: RealBatch, tmp_path: Path
) -> None:
    spec, when = real_batch.spec, real_data.PARITY_DATE
    with running_redis(tmp_path / "redis") as server:
        client = server.client()
        bootstrap(client, spec, str(real_batch.duckdb_path), when)
        with duckdb.connect(str(real_batch.duckdb_path), read_only=True) as con:
            december = con.sql(
                f"SELECT * FROM {spec.db_schema('raw')}.events WHERE event_ts >= ? "
                "ORDER BY event_ts",
                params=[when],
            ).pl()
        publish(client, spec.name, (encode(r) for r in december.iter_rows(named=True)))
        worker = Worker(client, spec, StreamConfig(consumer="w"), AlertNotifier(), NoChampion())
        worker.run(lambda: False, idle_exit_seconds=0.5)
        before = store.live_meta(client, spec.name)

        def online(meta: store.StateMeta) -> pl.DataFrame:
            ids = store.customers(client, spec.name, meta.version)
            states = store.read_states(client, spec.name, meta.version, ids)
            return derive_frame(states, date(2012, 1, 1), Knobs.of(spec, meta.first_day))

        streamed = online(before)
        with duckdb.connect(str(real_batch.duckdb_path), read_only=True) as con:
            latest = con.sql(f"SELECT * FROM {spec.db_schema('features')}.features_latest").pl()
        names = list(feature_set(spec).names)
        online_store.write_snapshot(
            client,
            spec.name,
            latest,
            as_of="observation_date",
            feature_set_version=feature_set(spec).registry_hash,
            model_version="1",
            features=names,
        )
        result = dg.materialize(
            [build_event_stream(spec)],
            resources={
                "duckdb": DuckDBResource(path=str(real_batch.duckdb_path)),
                "redis": RedisResource(url=server.url),
            },
        )
        assert result.success
        after = store.live_meta(client, spec.name)
        assert after.version != before.version and after.as_of == when
        assert online(after).equals(streamed)
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {"lag_and_dead_letters": True, "state_matches_batch": True}
        (materialization,) = result.get_asset_materialization_events()
        values = {k: v.value for k, v in materialization.materialization.metadata.items()}
        assert values["carried_over_events"] == worker.processed - values["dropped"]
        assert values["lag"] == 0 and values["dead_letters"] == 0
        assert values["last_event_id"] == december["event_id"][-1]
        # the API's rows: streamed customers as of 2012-01-01, the others as the batch wrote them
        rows, _, _ = online_store.read_rows(client, spec.name, latest["customer_id"].to_list())
        moved = rows.filter(pl.col("as_of") == date(2012, 1, 1)).drop("as_of")
        touched = december.filter(
            pl.col("customer_id").is_not_null()
            & pl.col("exclude_reason").is_null()
            & (pl.col("quantity") != 0)
        )["customer_id"]
        assert set(moved["customer_id"]) == set(touched) & set(latest["customer_id"])
        expected = streamed.filter(pl.col("customer_id").is_in(moved["customer_id"].implode()))
        columns = ["customer_id", *names]
        assert (
            moved.select(columns)
            .sort("customer_id")
            .equals(expected.select(columns).sort("customer_id"))
        )
        assert rows.filter(pl.col("as_of") == when).height == latest.height - moved.height
