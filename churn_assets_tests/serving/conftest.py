"""One serving environment per test session: tmp MLflow with a champion, Redis, DuckDB, server.

Registering a model and warming a server take a few seconds, so they are session-scoped and
shared; tests that change the registry use their own dataset name (``churn-<name>``) and
tests that stop Redis start their own. Every module is marked ``xdist_group("serving")`` so
this environment is built once, on one worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import mlflow
import polars as pl
import pytest

from churn_assets.lib import modeling, online_store
from churn_assets.lib.modeling.estimators import SEASON_FEATURE
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource
from churn_assets.serving import ServingConfig
from churn_assets_tests.redis_server import RedisServer
from churn_assets_tests.serving.fixtures import (
    API_KEY,
    OTHER_KEY,
    XGB_PARAMS,
    LiveServer,
    live_server,
    newest_rows,
    register_champion,
)
from churn_assets_tests.training.fixtures import retail_training_set_from, synthetic_retail_frame

DATASET = "retail"
OFFLINE_TABLE = f"{DATASET}_features.features_monthly"


@dataclass
class ServingEnv:
    root: Path
    mlflow: MLflowResource
    training_set: TrainingSet
    model: modeling.ChurnClassifier
    version: str
    store_frame: pl.DataFrame
    duckdb_path: Path
    redis: RedisServer

    def config(self, **overrides: object) -> ServingConfig:
        values: dict[str, object] = {
            "redis_url": self.redis.url,
            "datasets": (DATASET,),
            "mlflow_tracking_uri": self.mlflow.tracking_uri,
            "api_keys": frozenset({API_KEY, OTHER_KEY}),
            "reload_interval_seconds": 3600,
            "duckdb_path": self.duckdb_path,
            "batch_chunk_rows": 1000,
            **overrides,
        }
        return ServingConfig.model_validate(values)


def _offline_store(path: Path, ts: TrainingSet) -> None:
    """The monthly feature table the batch endpoint reads, as the feature build writes it."""
    frame = ts.frame().with_columns(pl.col(ts.entity).cast(pl.String))
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE SCHEMA {DATASET}_features")
        con.register("frame", frame.to_arrow())
        con.execute(f"CREATE TABLE {OFFLINE_TABLE} AS SELECT * FROM frame")


@pytest.fixture(scope="session")
def serving_env(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
) -> Iterator[ServingEnv]:
    root = tmp_path_factory.mktemp("serving")
    resource = MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts")
    )
    resource.configure()
    # The API examples' four features: an isotonic model (the telco setup) needs no calendar
    # month, which only the seasonal prior of out-of-time models reads.
    frame = synthetic_retail_frame().drop(SEASON_FEATURE)
    ts = retail_training_set_from(root / "processed", frame, "v1")
    version, model = register_champion(resource, DATASET, ts, XGB_PARAMS)
    store_frame = newest_rows(ts)
    online_store.write_snapshot(
        redis_server.client(),
        DATASET,
        store_frame,
        as_of="observation_date",
        feature_set_version="fs-test",
        model_version=version,
    )
    _offline_store(root / "churn.duckdb", ts)
    yield ServingEnv(
        root, resource, ts, model, version, store_frame, root / "churn.duckdb", redis_server
    )
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="session")
def service(serving_env: ServingEnv) -> Iterator[LiveServer]:
    with live_server(serving_env.config()) as live:
        yield live
