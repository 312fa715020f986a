"""503s: an empty online store, then Redis going away; the service itself stays up."""

from __future__ import annotations

import pytest

from churn_assets.lib import online_store
from churn_assets_tests.redis_server import running_redis
from churn_assets_tests.serving.conftest import DATASET, ServingEnv
from churn_assets_tests.serving.fixtures import live_server, wait_for

pytestmark = pytest.mark.xdist_group("serving")

SCORE = f"/v1/{DATASET}/score"


def test_store_problems_are_503_and_inline_rows_still_score(
    serving_env: ServingEnv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    inline = {
        "customer_id": "what-if",
        "recency_days": 10.0,
        "orders_90d": 3,
        "revenue_90d": 120.5,
        "segment_country": "UK",
    }
    with running_redis(tmp_path_factory.mktemp("redis-down")) as redis_server:
        config = serving_env.config(redis_url=redis_server.url, redis_timeout_seconds=0.5)
        with live_server(config) as live, live.client() as client:
            empty = client.post(SCORE, json={"customer_ids": ["12346"]})
            assert empty.status_code == 503
            assert "no snapshot for dataset 'retail'" in empty.json()["detail"]

            online_store.write_snapshot(
                redis_server.client(),
                DATASET,
                serving_env.store_frame.drop("segment_country"),
                as_of="observation_date",
                feature_set_version="old-features",
                model_version=serving_env.version,
            )
            stale = client.post(SCORE, json={"customer_ids": ["12346"]})
            assert stale.status_code == 503
            assert "lacks features ['segment_country']" in stale.json()["detail"]

            version = online_store.current_meta(redis_server.client(), DATASET).version
            redis_server.client().hset(
                online_store.row_key(DATASET, version, "12346"), "n", b"junk"
            )
            corrupt = client.post(SCORE, json={"customer_ids": ["12346"]})
            assert corrupt.status_code == 503
            assert "does not match its schema" in corrupt.json()["detail"]

            redis_server.stop()
            down = client.post(SCORE, json={"customer_ids": ["12346"]})
            assert down.status_code == 503
            assert down.json()["detail"].startswith("online store unavailable")
            ready = client.get("/health/ready")
            assert ready.status_code == 503
            assert ready.json()["reasons"][0].startswith("redis:")
            assert client.get("/health/live").status_code == 200
            what_if = client.post(SCORE, json={"rows": [inline]})
            assert what_if.status_code == 200 and what_if.json()["snapshot_version"] is None


def test_a_dataset_without_a_champion_is_503_until_one_exists(serving_env: ServingEnv) -> None:
    config = serving_env.config(datasets=(DATASET, "nochampion"))
    with live_server(config, wait_ready=False) as live, live.client() as client:

        def first_poll_done() -> bool:
            return "no @champion" in client.get("/health/ready").text

        wait_for(first_poll_done, 30, "the first registry poll")
        response = client.post("/v1/nochampion/score", json={"customer_ids": ["12346"]})
        assert response.status_code == 503
        assert "nochampion" in response.json()["detail"]
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert any("churn-nochampion" in reason for reason in ready.json()["reasons"])
        assert client.post(SCORE, json={"customer_ids": ["12346"]}).status_code == 200
