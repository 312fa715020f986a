"""The stream's guarantee on the real data, in the suite's budget: the last week of November
2011 streamed from the batch state through a worker process SIGKILLed twice, then every
customer's online features and score as of 2011-12-01 equal the batch's. (All of November
with five kills and two consumers: ``make parity-stream``.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from churn_assets.lib.datasets import DatasetSpec
from churn_assets_tests.redis_server import running_redis
from churn_assets_tests.streaming import real_data

pytestmark = pytest.mark.xdist_group("stream_real_data")

WEEK_START = date(2011, 11, 24)


def test_last_week_of_november_with_kills_equals_the_batch(
    tmp_path: Path, specs: dict[str, DatasetSpec]
) -> None:
    spec = specs["retail"]
    duckdb_path = real_data.build_batch(spec, tmp_path)
    mlflow, _ = real_data.register_champion_from_batch(spec, duckdb_path, tmp_path)
    with running_redis(tmp_path / "redis") as server:
        env = {
            "CHURN_HOME": str(tmp_path),
            "CHURN_REDIS_URL": server.url,
            "CHURN_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
            "CHURN_DUCKDB_PATH": str(duckdb_path),
            "CHURN_STREAM_CLAIM_IDLE_MS": "1000",
            "OMP_NUM_THREADS": "1",
        }
        report = real_data.stream_with_faults(
            spec, duckdb_path, server.client(), env, tmp_path, start=WEEK_START, kills=2
        )
    assert report.kills == 2
    assert report.counted > 10_000 and report.applied == report.counted, report.lines()
    assert report.feature_mismatches == [], report.feature_mismatches[:10]
    assert report.customers > 5000
    assert report.scores > 500 and report.score_mismatches == []
