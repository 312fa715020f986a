"""Building blocks of the serving tests: a registered model, a live server, the store rows.

Models are trained and registered with the project's own code (``modeling``,
``registry_models.log_model_run``) on the synthetic retail training set of the training tests,
with a small fixed XGBoost so a registration takes about a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import polars as pl
import uvicorn

from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.modeling.protocol import Candidate, Protocol
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource
from churn_assets.serving import ServingConfig, create_app
from churn_assets_tests.redis_server import free_port

API_KEY = "test-key-0123456789abcdef"
OTHER_KEY = "second-key-0123456789abcdef"
XGB_PARAMS = {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.2}


def train(ts: TrainingSet, params: dict[str, Any]) -> tuple[modeling.ChurnClassifier, Any]:
    """XGBoost with isotonic calibration (the telco setup): exercises encoder and calibrator."""
    split = modeling.split_random(ts, ts.frame(), seed=42, n_folds=3)
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(ts, params, seed=42, n_jobs=1),
        ts,
        split,
        calibration="isotonic",
        threshold=0.5,
    )
    return model, split


def register_champion(
    mlflow_resource: MLflowResource,
    dataset: str,
    ts: TrainingSet,
    params: dict[str, Any],
    *,
    promote: bool = True,
) -> tuple[str, modeling.ChurnClassifier]:
    """Train, log and register a version of ``churn-<dataset>``; make it champion if asked."""
    model, split = train(ts, params)
    logged = registry.log_model_run(
        experiment_id=mlflow_resource.experiment_id(registry.experiment_name(dataset)),
        run_name=f"{dataset}-serving-test",
        model=model,
        ts=ts,
        input_example=split.x_train.head(3),
        params=params,
        metrics={"roc_auc": 0.75, "ece": 0.03},
        figures={},
        tags={"role": "candidate"},
    )
    candidate = Candidate(
        name="xgboost",
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        training_set_version=ts.version,
        protocol=Protocol(kind="out_of_time", horizon_days=90),
        metrics={"roc_auc": 0.75, "ece": 0.03},
        validation_auc=0.75,
    )
    version = registry.register(dataset, candidate, {})
    if promote:
        registry.set_alias_and_tags(dataset, version, registry.CHAMPION, {})
    return version, model


def newest_rows(ts: TrainingSet) -> pl.DataFrame:
    """What the online store holds: every customer's newest feature row, ids as text."""
    frame = ts.frame().with_columns(pl.col(ts.entity).cast(pl.String))
    newest = frame["observation_date"].max()
    return frame.filter(pl.col("observation_date") == newest).drop(ts.label)


@dataclass
class LiveServer:
    """A uvicorn server on a free loopback port, running the app in a thread."""

    base_url: str
    server: uvicorn.Server

    def client(self, key: str | None = API_KEY, **kwargs: Any) -> httpx.Client:
        headers = {} if key is None else {"X-API-Key": key}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)


@contextmanager
def live_server(config: ServingConfig, *, wait_ready: bool = True) -> Iterator[LiveServer]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", server)
    try:
        _wait(live, "/health/ready" if wait_ready else "/health/live")
        yield live
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def wait_for(condition: Callable[[], bool], timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _wait(live: LiveServer, path: str, timeout_seconds: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    last = ""
    with live.client() as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(path)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.TransportError as exc:
                last = str(exc)
            time.sleep(0.05)
    raise TimeoutError(f"{live.base_url}{path} not 200 after {timeout_seconds} s: {last}")
