"""Every endpoint of the scoring service against a live uvicorn, Redis and a tmp MLflow."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import date

import numpy as np
import polars as pl
import pytest

from churn_assets.lib.explain import explain
from churn_assets.lib.modeling import feature_frame
from churn_assets_tests.serving.conftest import DATASET, ServingEnv
from churn_assets_tests.serving.fixtures import API_KEY, OTHER_KEY, LiveServer, live_server

pytestmark = pytest.mark.xdist_group("serving")

SCORE = f"/v1/{DATASET}/score"
BATCH = f"/v1/{DATASET}/score/batch"
PROTECTED = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/admin/reload", None),
    ("POST", SCORE, {"customer_ids": ["12346"]}),
    ("POST", BATCH, {"observation_date": "2011-09-01"}),
]


def _features(env: ServingEnv, ids: list[str]) -> pl.DataFrame:
    rows = env.store_frame.filter(pl.col("customer_id").is_in(ids))
    return rows.sort(pl.col("customer_id").replace_strict({c: i for i, c in enumerate(ids)}))


def _model_input(env: ServingEnv, rows: pl.DataFrame):  # type: ignore[no-untyped-def]
    ts = env.training_set
    return feature_frame(rows, ts.numeric_features, ts.categorical_features)


def _training_deciles(env: ServingEnv, probability: np.ndarray) -> np.ndarray:
    reference = env.model.predict_proba(_model_input(env, env.training_set.frame()))[:, 1]
    edges = np.quantile(reference, np.linspace(0.1, 0.9, 9))
    return 1 + np.searchsorted(edges, probability, side="left")


def test_health_and_docs_need_no_key(service: LiveServer) -> None:
    with service.client(key=None) as client:
        assert client.get("/health/live").json() == {"status": "ok", "reasons": []}
        assert client.get("/health/ready").json() == {"status": "ok", "reasons": []}
        assert client.get("/docs").status_code == 200
        schema = client.get("/openapi.json").json()
    assert {SCORE.replace(DATASET, "{dataset}"), "/v1/models"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789", API_KEY[:-1]])
def test_every_v1_route_needs_a_valid_key(
    service: LiveServer, method: str, path: str, body: object, key: str | None
) -> None:
    with service.client(key=key) as client:
        response = client.request(method, path, json=body)
    assert response.status_code == 401
    assert "X-API-Key" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "X-API-Key"


def test_score_by_id_matches_the_model_and_shap(
    service: LiveServer, serving_env: ServingEnv
) -> None:
    ids = serving_env.store_frame["customer_id"].sample(60, seed=3).to_list()
    with service.client(key=OTHER_KEY) as client:
        response = client.post(SCORE, json={"customer_ids": ids})
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-model-version"] == body["model_version"] == serving_env.version
    assert body["model_name"] == f"churn-{DATASET}"
    assert body["feature_set_version"] == "fs-test"
    results = body["results"]
    assert [r["customer_id"] for r in results] == ids
    assert {r["source"] for r in results} == {"online_store"}
    assert {r["as_of"] for r in results} == {"2011-09-01"}
    assert {r["model_version"] for r in results} == {serving_env.version}

    x = _model_input(serving_env, _features(serving_env, ids))
    expected = serving_env.model.predict_proba(x)[:, 1]
    got = np.array([r["probability"] for r in results])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
    assert [r["risk_decile"] for r in results] == _training_deciles(serving_env, expected).tolist()

    shap_values = explain(serving_env.model, x).values
    features = np.array(serving_env.model.features)
    compared = 0
    for result, row in zip(results, shap_values, strict=True):
        magnitude = np.sort(np.abs(row))[::-1]
        if np.min(np.diff(-magnitude[:4])) < 1e-6:
            continue  # a tie in |SHAP| makes the order of equals arbitrary
        top = np.argsort(-np.abs(row))[:3]
        assert [r["feature"] for r in result["reasons"]] == features[top].tolist()
        np.testing.assert_allclose(
            [r["contribution"] for r in result["reasons"]], row[top], atol=1e-6
        )
        compared += 1
    assert compared >= 30


def test_reasons_report_the_raw_values(service: LiveServer, serving_env: ServingEnv) -> None:
    customer = serving_env.store_frame.row(0, named=True)
    with service.client() as client:
        result = client.post(SCORE, json={"customer_ids": [customer["customer_id"]]}).json()
    for reason in result["results"][0]["reasons"]:
        assert reason["value"] == customer[reason["feature"]]


def test_inline_rows_score_like_stored_ones(service: LiveServer, serving_env: ServingEnv) -> None:
    stored = serving_env.store_frame.row(5, named=True)
    features = {k: v for k, v in stored.items() if k not in ("customer_id", "observation_date")}
    what_if = {**features, "customer_id": "what-if", "recency_days": 400.0, "segment_country": None}
    with service.client() as client:
        response = client.post(
            SCORE,
            json={
                "customer_ids": [stored["customer_id"]],
                "rows": [{**features, "customer_id": "copy"}, what_if],
            },
        )
    assert response.status_code == 200, response.text
    by_id, copy, changed = response.json()["results"]
    assert [by_id["source"], copy["source"], changed["source"]] == [
        "online_store",
        "inline",
        "inline",
    ]
    assert copy["probability"] == by_id["probability"] and copy["as_of"] is None
    expected = serving_env.model.predict_proba(
        _model_input(
            serving_env, pl.DataFrame([what_if], schema_overrides={"segment_country": pl.String})
        )
    )[0, 1]
    assert changed["probability"] == pytest.approx(expected, abs=1e-9)
    assert changed["probability"] != copy["probability"]


def test_numbers_beyond_float32_are_scored_and_explained(service: LiveServer) -> None:
    row = {"customer_id": "huge", "recency_days": 1e300, "orders_90d": -1e300}
    with service.client() as client:
        response = client.post(
            SCORE, json={"rows": [{**row, "revenue_90d": 1.0, "segment_country": "UK"}]}
        )
    assert response.status_code == 200, response.text
    assert len(response.json()["results"][0]["reasons"]) == 3


def test_unknown_dataset_and_customers_are_404(service: LiveServer) -> None:
    with service.client() as client:
        unknown = client.post("/v1/nope/score", json={"customer_ids": ["12346"]})
        missing = client.post(SCORE, json={"customer_ids": ["12346", "ghost-1", "ghost-2"]})
        batch = client.post("/v1/nope/score/batch", json={"observation_date": "2011-09-01"})
    assert unknown.status_code == batch.status_code == 404
    assert "'nope'" in unknown.json()["detail"] and DATASET in unknown.json()["detail"]
    assert missing.status_code == 404
    assert "'ghost-1', 'ghost-2'" in missing.json()["detail"]
    assert "'12346'" not in missing.json()["detail"]


def _bad(client, body: object = None, content: bytes | None = None) -> dict:  # type: ignore[no-untyped-def]
    if content is not None:
        response = client.post(SCORE, content=content, headers={"Content-Type": "application/json"})
    else:
        response = client.post(SCORE, json=body)
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def test_bad_requests_are_422_naming_the_field(
    service: LiveServer, serving_env: ServingEnv
) -> None:
    full_row = {"customer_id": "x", "recency_days": 1, "orders_90d": 2, "revenue_90d": 3.0}
    with service.client() as client:
        assert _bad(client, content=b'{"customer_ids": [')[0]["type"] == "json_invalid"
        assert _bad(client, {"customer_ids": [1]})[0]["loc"] == ["body", "customer_ids", 0]
        assert _bad(client, {"customer_ids": [str(i) for i in range(1001)]})[0]["loc"] == [
            "body",
            "customer_ids",
        ]
        too_many = {
            "customer_ids": ["12346"] * 600,
            "rows": [{**full_row, "segment_country": "UK"}] * 600,
        }
        assert "1 to 1000" in _bad(client, too_many)[0]["msg"]
        assert "got 0" in _bad(client, {})[0]["msg"]
        assert _bad(client, {"customer_ids": ["12346"], "extra": 1})[0]["loc"] == ["body", "extra"]
        assert _bad(client, {"customer_ids": [""]})[0]["loc"] == ["body", "customer_ids", 0]
        assert _bad(client, {"rows": [{"recency_days": 1}]})[0]["loc"] == [
            "body",
            "rows",
            0,
            "customer_id",
        ]
        missing = _bad(client, {"rows": [full_row]})
        assert [e["loc"] for e in missing] == [["body", "rows", 0, "segment_country"]]
        wrong_types = {**full_row, "recency_days": "12", "segment_country": 3, "revenue_90d": 0.5}
        raw = json.dumps({"rows": [wrong_types]}).replace("0.5", "1e400")  # JSON, but not finite
        wrong = _bad(client, content=raw.encode())
        assert {tuple(e["loc"][-1:]) for e in wrong} == {
            ("recency_days",),
            ("segment_country",),
            ("revenue_90d",),
        }
        nested = _bad(client, {"rows": [{**full_row, "segment_country": {"a": 1}}]})
        assert nested[0]["loc"][:4] == ["body", "rows", 0, "segment_country"]


def test_body_size_limit_is_413(service: LiveServer) -> None:
    padding = {"customer_ids": ["12346"], "rows": [], "pad": "x" * (2 << 20)}

    def chunks() -> Iterator[bytes]:
        data = json.dumps(padding).encode()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    with service.client() as client:
        declared = client.post(SCORE, json=padding)
        streamed = client.post(
            SCORE, content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert declared.status_code == streamed.status_code == 413
    assert "1048576" in declared.json()["detail"] and "1048576" in streamed.json()["detail"]


def test_uploads_have_their_own_limit(serving_env: ServingEnv) -> None:
    rows = serving_env.store_frame.write_csv().encode()
    assert len(rows) > 4096
    config = serving_env.config(max_upload_bytes=4096, max_body_bytes=1024)
    with live_server(config) as live, live.client() as client:
        too_big = client.post(BATCH, files={"file": ("rows.csv", rows)})
        fits = client.post(BATCH, files={"file": ("rows.csv", rows[:2000].rsplit(b"\n", 1)[0])})
    assert too_big.status_code == 413 and "4096" in too_big.json()["detail"]
    assert fits.status_code == 200, fits.text  # above the 1 KiB JSON limit, below 4 KiB


def test_models_describe_the_champion(service: LiveServer, serving_env: ServingEnv) -> None:
    with service.client() as client:
        body = client.get("/v1/models").json()
    assert body["not_loaded"] == []
    (model,) = body["models"]
    ts = serving_env.training_set
    assert model["dataset"] == DATASET and model["alias"] == "champion"
    assert model["version"] == serving_env.version
    assert model["training_set_version"] == ts.version
    assert model["training_set"]["training_set.path"] == str(ts.path)
    assert model["features"] == list(ts.features)
    assert model["metrics"] == {"roc_auc": 0.75, "ece": 0.03}
    assert model["trained_at"] <= model["loaded_at"]
    assert model["explainer"] == "xgboost_pred_contribs" and model["fast_path"] is True


def test_reload_without_a_new_champion_changes_nothing(
    service: LiveServer, serving_env: ServingEnv
) -> None:
    with service.client() as client:
        response = client.post("/v1/admin/reload", params={"dataset": DATASET})
        unknown = client.post("/v1/admin/reload", params={"dataset": "nope"})
    assert response.json()["results"] == [
        {
            "dataset": DATASET,
            "previous_version": serving_env.version,
            "version": serving_env.version,
            "changed": False,
            "error": None,
        }
    ]
    assert unknown.status_code == 404


def _expected_scores(env: ServingEnv, frame: pl.DataFrame) -> np.ndarray:
    return env.model.predict_proba(_model_input(env, frame))[:, 1]


def test_batch_upload_parquet_in_streamed_chunks(
    service: LiveServer, serving_env: ServingEnv
) -> None:
    frame = serving_env.training_set.frame().with_columns(pl.col("customer_id").cast(pl.String))
    upload = io.BytesIO()
    frame.write_parquet(upload)
    with service.client() as client:
        response = client.post(BATCH, files={"file": ("month.parquet", upload.getvalue())})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    assert response.headers["x-model-version"] == serving_env.version
    scores = pl.read_parquet(io.BytesIO(response.content))
    assert len(scores) == len(frame) > 5 * 1000  # several row groups were streamed
    assert scores.columns == [
        "observation_date",
        "customer_id",
        "churn_probability",
        "risk_decile",
        *[f"driver_{i}{s}" for i in (1, 2, 3) for s in ("", "_value", "_shap")],
        "model_name",
        "model_version",
        "scored_at",
    ]
    assert scores["customer_id"].to_list() == frame["customer_id"].to_list()
    assert scores["observation_date"].to_list() == frame["observation_date"].to_list()
    np.testing.assert_allclose(
        scores["churn_probability"].to_numpy(), _expected_scores(serving_env, frame), atol=1e-9
    )
    assert set(scores["model_version"]) == {serving_env.version}


def test_batch_upload_csv_answers_csv(service: LiveServer, serving_env: ServingEnv) -> None:
    frame = serving_env.store_frame.head(50)
    with service.client() as client:
        response = client.post(
            BATCH,
            files={"file": ("rows.csv", frame.write_csv().encode())},
            headers={"Accept": "text/csv"},
            params={"reasons": "false"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    scores = pl.read_csv(io.BytesIO(response.content), schema_overrides={"customer_id": pl.String})
    assert "driver_1" not in scores.columns
    np.testing.assert_allclose(
        scores["churn_probability"].to_numpy(), _expected_scores(serving_env, frame), atol=1e-9
    )


def test_batch_of_an_offline_month(service: LiveServer, serving_env: ServingEnv) -> None:
    month = date(2011, 9, 1)
    with service.client() as client:
        response = client.post(
            BATCH, json={"observation_date": month.isoformat()}, params={"format": "csv"}
        )
    assert response.status_code == 200, response.text
    text = {"customer_id": pl.String, "driver_1_value": pl.String}
    scores = pl.read_csv(io.BytesIO(response.content), schema_overrides=text)
    frame = serving_env.training_set.frame().filter(pl.col("observation_date") == month)
    assert len(scores) == len(frame) == 300
    assert scores["customer_id"].to_list() == frame["customer_id"].cast(pl.String).to_list()
    np.testing.assert_allclose(
        scores["churn_probability"].to_numpy(), _expected_scores(serving_env, frame), atol=1e-9
    )
    drivers = scores.select("driver_1", "driver_1_value").row(0)
    stored = frame.row(0, named=True)
    assert drivers[1] == str(stored[drivers[0]])


def test_bad_batch_requests(service: LiveServer, serving_env: ServingEnv) -> None:
    no_segment = serving_env.store_frame.drop("segment_country").write_csv().encode()
    with service.client() as client:
        no_rows = client.post(BATCH, json={"observation_date": "1999-01-01"})
        bad_date = client.post(BATCH, json={"observation_date": "September"})
        wrong_media = client.post(BATCH, content=b"x", headers={"Content-Type": "text/plain"})
        missing_column = client.post(BATCH, files={"file": ("a.csv", no_segment)})
        garbage = client.post(BATCH, files={"file": ("a.parquet", b"PAR1 not really")})
        no_file = client.post(BATCH, files={"other": ("a.csv", b"x")})
        text_number = client.post(
            BATCH,
            files={
                "file": (
                    "a.csv",
                    b"customer_id,recency_days,orders_90d,revenue_90d,segment_country\n12346,abc,1,1,UK\n",
                )
            },
        )
    assert no_rows.status_code == 404 and "1999-01-01" in no_rows.json()["detail"]
    assert bad_date.status_code == 422
    assert bad_date.json()["detail"][0]["loc"] == ["body", "observation_date"]
    assert wrong_media.status_code == 415
    assert missing_column.status_code == 422
    assert missing_column.json()["detail"][0]["loc"] == ["body", "segment_country"]
    assert garbage.status_code == 422 and garbage.json()["detail"][0]["loc"] == ["body", "file"]
    assert no_file.status_code == 422 and no_file.json()["detail"][0]["loc"] == ["body", "file"]
    assert text_number.status_code == 422
    assert text_number.json()["detail"][0]["loc"] == ["body", "recency_days"]
