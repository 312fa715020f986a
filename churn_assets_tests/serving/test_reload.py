"""Hot reload: a new champion replaces the live model while requests keep flowing."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from churn_assets.lib import online_store
from churn_assets.lib import registry_models as registry
from churn_assets.lib.modeling import ChurnClassifier, feature_frame
from churn_assets.lib.training_set import TrainingSet
from churn_assets_tests.serving.conftest import ServingEnv
from churn_assets_tests.serving.fixtures import (
    XGB_PARAMS,
    LiveServer,
    live_server,
    register_champion,
    wait_for,
)

pytestmark = pytest.mark.xdist_group("serving")

DATASET = "reloadable"
SCORE = f"/v1/{DATASET}/score"


@pytest.fixture(scope="module")
def reloadable(serving_env: ServingEnv) -> Iterator[ServingEnv]:
    """Its own registered model (so promotions here never touch the shared champion)."""
    version, model = register_champion(
        serving_env.mlflow, DATASET, serving_env.training_set, XGB_PARAMS
    )
    online_store.write_snapshot(
        serving_env.redis.client(),
        DATASET,
        serving_env.store_frame,
        as_of="observation_date",
        feature_set_version="fs-test",
        model_version=version,
    )
    yield replace(serving_env, model=model, version=version)


class Load:
    """Client threads sending score requests until stopped, recording every answer."""

    def __init__(self, live: LiveServer, ids: list[str], threads: int = 2) -> None:
        self.live, self.ids = live, ids
        self.answers: list[tuple[int, str, list[float]]] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, thread: int) -> None:
        with self.live.client() as client:
            while not self._stop.is_set():
                response = client.post(SCORE, json={"customer_ids": self.ids})
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code}: {response.text}")
                    continue
                body = response.json()
                if response.headers["x-model-version"] != body["model_version"]:
                    self.failures.append(f"header and body disagree: {response.headers}")
                probability = [r["probability"] for r in body["results"]]
                self.answers.append((thread, body["model_version"], probability))

    def versions(self) -> set[str]:
        return {version for _, version, _ in self.answers}

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _expected(model: ChurnClassifier, env: ServingEnv, ids: list[str]) -> list[float]:
    ts = env.training_set
    rows = env.store_frame.filter(env.store_frame["customer_id"].is_in(ids))
    order = {c: i for i, c in enumerate(rows["customer_id"].to_list())}
    x = feature_frame(rows, ts.numeric_features, ts.categorical_features)
    return model.predict_proba(x)[[order[c] for c in ids], 1].tolist()


def test_admin_reload_swaps_models_without_failing_a_request(reloadable: ServingEnv) -> None:
    ids = reloadable.store_frame["customer_id"].head(20).to_list()
    with live_server(reloadable.config(datasets=(DATASET,))) as live, Load(live, ids) as load:
        wait_for(lambda: len(load.answers) >= 20, 30, "answers from the first champion")
        new_version, new_model = register_champion(
            reloadable.mlflow,
            DATASET,
            reloadable.training_set,
            {**XGB_PARAMS, "n_estimators": 12, "max_depth": 2},
        )
        with live.client() as client:
            reload = client.post("/v1/admin/reload").json()["results"]
        assert reload == [
            {
                "dataset": DATASET,
                "previous_version": reloadable.version,
                "version": new_version,
                "changed": True,
                "error": None,
            }
        ]
        served = len(load.answers)
        wait_for(lambda: len(load.answers) >= served + 20, 30, "answers after the swap")
    assert load.failures == []
    assert load.versions() == {reloadable.version, new_version}
    for thread in (0, 1):
        sequence = [v for t, v, _ in load.answers if t == thread]
        switch = sequence.index(new_version)
        assert set(sequence[:switch]) == {reloadable.version}
        assert set(sequence[switch:]) == {new_version}, "a response went back to the old model"
    expected = {
        reloadable.version: _expected(reloadable.model, reloadable, ids),
        new_version: _expected(new_model, reloadable, ids),
    }
    assert expected[reloadable.version] != expected[new_version]
    for _, version, probability in load.answers:
        np.testing.assert_allclose(probability, expected[version], atol=1e-9)


def test_poller_loads_a_promoted_version(reloadable: ServingEnv) -> None:
    config = reloadable.config(datasets=(DATASET,), reload_interval_seconds=0.2)
    with live_server(config) as live, live.client() as client:
        version, _ = register_champion(
            reloadable.mlflow, DATASET, reloadable.training_set, {**XGB_PARAMS, "n_estimators": 7}
        )

        def serving_new_version() -> bool:
            return (
                client.post(SCORE, json={"customer_ids": ["12346"]}).json()["model_version"]
                == version
            )

        wait_for(serving_new_version, 30, f"the poller to load v{version}")


def test_a_version_that_fails_to_load_leaves_the_old_one_serving(
    reloadable: ServingEnv,
) -> None:
    with live_server(reloadable.config(datasets=(DATASET,))) as live, live.client() as client:
        serving = client.get("/v1/models").json()["models"][0]["version"]
        doomed_dir = reloadable.root / "doomed"
        shutil.copytree(reloadable.training_set.path, doomed_dir)
        doomed = TrainingSet(
            DATASET,
            "doomed",
            doomed_dir,
            reloadable.training_set.numeric_features,
            reloadable.training_set.categorical_features,
        )
        broken, _ = register_champion(reloadable.mlflow, DATASET, doomed, XGB_PARAMS)
        shutil.rmtree(doomed_dir)  # its training set vanished: deciles cannot be computed
        (result,) = client.post("/v1/admin/reload").json()["results"]
        assert (result["changed"], result["version"]) == (False, serving)
        assert "FileNotFoundError" in result["error"] or "No such file" in result["error"]
        models = client.get("/v1/models").json()["models"][0]
        assert models["version"] == serving and "doomed" in models["last_reload_error"]
        score = client.post(SCORE, json={"customer_ids": ["12346"]})
        assert score.status_code == 200 and score.json()["model_version"] == serving
        assert client.get("/health/ready").status_code == 200
    registry.set_alias_and_tags(DATASET, serving, registry.CHAMPION, {})
    assert broken != serving
