"""The FastAPI scoring service: ``create_app(config)`` builds it, uvicorn runs it.

Request path of ``POST /v1/{dataset}/score``: API key → live model of the dataset (one
reference read, kept to the end of the request) → online-store rows of all ids in one
pipeline → inline rows checked against the model → one scoring call → JSON naming the model
version. Small requests are scored on the event loop (a thread hop would cost more than the
work); larger ones and batch output go to worker threads so they never stall other requests.
Every expected failure maps to a 4xx/503 with a ``detail`` that names the culprit.
"""

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from importlib.metadata import version as package_version
from typing import Annotated, Any

import polars as pl
import redis
import redis.asyncio
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from churn_assets.lib import online_store
from churn_assets.serving import batch
from churn_assets.serving.auth import api_key_guard
from churn_assets.serving.config import ServingConfig
from churn_assets.serving.limits import BodySizeLimit
from churn_assets.serving.models import Champions, ServedModel
from churn_assets.serving.schemas import (
    BatchRequest,
    ErrorBody,
    Health,
    ModelInfo,
    ModelsResponse,
    ReloadResponse,
    ReloadResult,
    ScoreRequest,
    ScoreResponse,
    inline_feature_rows,
)
from churn_assets.serving.scoring import FeatureRows, Scores

INLINE_SCORING_MAX_ROWS = 32
MODEL_VERSION_HEADER = "X-Model-Version"
MAX_LISTED_IDS = 20

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or invalid API key"},
    404: {"model": ErrorBody, "description": "unknown dataset or customer"},
    413: {"model": ErrorBody, "description": "request body too large"},
    503: {"model": ErrorBody, "description": "model, online or offline store unavailable"},
}


class _Service:
    """Per-app state: config, Redis client, live models and the reload poller."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.champions = Champions(config.datasets, config.mlflow_tracking_uri)
        self.offline = (
            None
            if config.duckdb_path is None
            else batch.OfflineStore(config.duckdb_path, config.offline_lock_timeout_seconds)
        )
        # A blocking pool: when a stall piles requests up, the excess waits for a connection
        # (up to the Redis timeout) instead of failing at redis-py's default of 100.
        self.redis = redis.asyncio.Redis.from_pool(
            redis.asyncio.BlockingConnectionPool.from_url(
                config.redis_url,
                max_connections=config.redis_max_connections,
                timeout=config.redis_timeout_seconds,
                socket_timeout=config.redis_timeout_seconds,
                socket_connect_timeout=config.redis_timeout_seconds,
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        """Start polling the registry (the first poll loads every champion) in the background,
        so the process answers liveness at once and readiness once models are warm."""
        poller = asyncio.create_task(self.champions.poll(self.config.reload_interval_seconds))
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await self.redis.aclose()
            if self.offline is not None:
                self.offline.close()

    def body_limit(self, path: str) -> int:
        if path.endswith("/score/batch"):
            return self.config.max_upload_bytes
        return self.config.max_body_bytes

    def require_served(self, dataset: str) -> None:
        if dataset not in self.config.datasets:
            raise HTTPException(
                404, f"unknown dataset {dataset!r}; served: {', '.join(self.config.datasets)}"
            )

    async def live_model(self, dataset: str) -> ServedModel:
        """The dataset's live model (404 if not served, 503 while none is loaded); ``async``
        so FastAPI calls it on the event loop instead of in a worker thread."""
        self.require_served(dataset)
        model = self.champions.get(dataset)
        if model is None:
            raise HTTPException(503, self.champions.why_not_ready(dataset))
        return model

    async def store_rows(
        self, dataset: str, customer_ids: list[str], model: ServedModel
    ) -> tuple[FeatureRows, list[str], online_store.SnapshotMeta]:
        """Features of ``customer_ids`` from the online store, with their as-of dates."""
        stored, missing = await online_store.read_stored_async(self.redis, dataset, customer_ids)
        if missing:
            listed = ", ".join(repr(c) for c in missing[:MAX_LISTED_IDS])
            more = len(missing) - MAX_LISTED_IDS
            raise HTTPException(
                404,
                f"customers not in the online store of {dataset!r}: {listed}"
                + (f" and {more} more" if more > 0 else ""),
            )
        try:
            features = FeatureRows.from_stored(
                stored, model.scorer.numeric, model.scorer.categorical
            )
        except online_store.FeatureMismatch as exc:
            raise HTTPException(
                503, f"the online store of {dataset!r} cannot feed model v{model.version}: {exc}"
            ) from exc
        return features, stored.as_of, stored.meta


def _score_body(
    dataset: str,
    model: ServedModel,
    features: FeatureRows,
    scores: Scores,
    results: list[tuple[str, str, str | None]],
    snapshot: online_store.SnapshotMeta | None,
) -> dict[str, Any]:
    """The ``ScoreResponse`` as plain JSON types (built directly: it is the hot path)."""
    names = model.scorer.features
    contributions = scores.contributions
    top = [] if contributions is None else scores.top_reasons().tolist()
    probability, decile = scores.probability.tolist(), scores.decile.tolist()
    items = []
    for i, (customer_id, source, as_of) in enumerate(results):
        reasons = (
            []
            if contributions is None
            else [
                {
                    "feature": names[j],
                    "value": features.value(i, j),
                    "contribution": float(contributions[i, j]),
                }
                for j in top[i]
            ]
        )
        items.append(
            {
                "customer_id": customer_id,
                "source": source,
                "probability": probability[i],
                "risk_decile": decile[i],
                "as_of": as_of,
                "reasons": reasons,
                "model_version": model.version,
            }
        )
    return {
        "dataset": dataset,
        "model_name": model.name,
        "model_version": model.version,
        "snapshot_version": None if snapshot is None else snapshot.version,
        "feature_set_version": None if snapshot is None else snapshot.feature_set_version,
        "results": items,
    }


def _model_info(model: ServedModel, error: str | None) -> ModelInfo:
    scorer = model.scorer
    return ModelInfo(
        dataset=model.dataset,
        model_name=model.name,
        version=model.version,
        alias=model.alias,
        run_id=model.run_id,
        training_set_version=model.training_set_version,
        provenance_id=model.provenance_id,
        training_set=model.training_set_tags,
        features=scorer.features,
        numeric_features=scorer.numeric,
        categorical_features=scorer.categorical,
        metrics={k: v if math.isfinite(v) else None for k, v in model.metrics.items()},
        trained_at=model.trained_at,
        loaded_at=model.loaded_at,
        explainer=scorer.explainer,
        fast_path=scorer.fast_path,
        last_reload_error=error,
    )


def _json_safe(value: Any) -> Any:
    """Non-finite floats as their names, so any echoed input can be serialized."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def _unprocessable(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


async def _uploaded_frame(request: Request, model: ServedModel) -> pl.DataFrame:
    form = await request.form(max_files=1, max_fields=8)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _unprocessable(("body", "file"), "Field required: a parquet or CSV file")
        data = await upload.read()
    finally:
        await form.close()
    return await run_in_threadpool(batch.read_upload, data, model)


def create_app(config: ServingConfig) -> FastAPI:
    """The scoring service for ``config.datasets`` (see ``docs/deploy.md``)."""
    service = _Service(config)
    app = FastAPI(
        title="churn_assets scoring service",
        version=package_version("churn_assets"),
        description=(
            "Churn probability, risk decile and top-3 reasons for customers of the served "
            "datasets, from the registry's `@champion` model and the online feature store. "
            "Send one of the configured keys in the `X-API-Key` header on `/v1` routes."
        ),
        lifespan=service.lifespan,
    )
    app.add_middleware(BodySizeLimit, limit_for=service.body_limit)
    authenticated = [Depends(api_key_guard(config.api_keys))]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, except that echoed inputs may be NaN or Infinity (Python's JSON
        parser accepts those tokens) and strict JSON output cannot hold them."""
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def unparsable_body(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI and Starlette answer 400 when a body cannot be parsed at all (bytes that
        are not UTF-8 JSON, a broken multipart stream); this API answers every malformed
        body with 422 and the location ``body``. Other HTTP errors keep their status."""
        if exc.status_code != 400:
            return await http_exception_handler(request, exc)
        error = {"type": "body_unparsable", "loc": ["body"], "msg": str(exc.detail)}
        return JSONResponse({"detail": [error]}, status_code=422)

    @app.exception_handler(online_store.SnapshotNotFound)
    @app.exception_handler(online_store.SnapshotCorrupt)
    async def snapshot_unusable(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def redis_down(_: Request, exc: redis.RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"online store unavailable: {exc}"}, status_code=503)

    @app.exception_handler(batch.OfflineStoreUnavailable)
    async def offline_down(_: Request, exc: batch.OfflineStoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(batch.NoRowsForDate)
    async def no_rows(_: Request, exc: batch.NoRowsForDate) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(batch.BatchInputError)
    async def bad_batch(_: Request, exc: batch.BatchInputError) -> JSONResponse:
        error = {"type": "value_error", "loc": ["body", exc.field], "msg": str(exc)}
        return JSONResponse({"detail": [error]}, status_code=422)

    @app.get("/health/live", response_model=Health, tags=["health"])
    async def live() -> Health:
        """The process is up (restart it if this fails)."""
        return Health(status="ok")

    @app.get(
        "/health/ready",
        response_model=Health,
        tags=["health"],
        responses={503: {"model": Health, "description": "not ready, with the reasons"}},
    )
    async def ready() -> Any:
        """Every champion is loaded and warmed up and Redis answers (send traffic)."""
        reasons = service.champions.not_ready()
        try:
            await service.redis.ping()
        except redis.RedisError as exc:
            reasons.append(f"redis: {exc}")
        if reasons:
            return JSONResponse(
                Health(status="unavailable", reasons=reasons).model_dump(), status_code=503
            )
        return Health(status="ok")

    @app.get(
        "/v1/models",
        response_model=ModelsResponse,
        dependencies=authenticated,
        tags=["models"],
        responses={401: _ERRORS[401]},
    )
    async def models() -> ModelsResponse:
        """The live model of every served dataset, with its training data and test metrics."""
        live = [
            _model_info(m, service.champions.last_error(ds))
            for ds in config.datasets
            if (m := service.champions.get(ds)) is not None
        ]
        return ModelsResponse(models=live, not_loaded=service.champions.not_ready())

    @app.post(
        "/v1/admin/reload",
        response_model=ReloadResponse,
        dependencies=authenticated,
        tags=["models"],
        responses={401: _ERRORS[401], 404: _ERRORS[404]},
    )
    async def reload(
        dataset: Annotated[
            str | None, Query(description="only this dataset (default: all)")
        ] = None,
    ) -> ReloadResponse:
        """Load the registry's current ``@champion`` now instead of at the next poll."""
        if dataset is not None:
            service.require_served(dataset)
        outcomes = await service.champions.refresh(None if dataset is None else (dataset,))
        return ReloadResponse(results=[ReloadResult(**vars(o)) for o in outcomes])

    @app.post(
        "/v1/{dataset}/score",
        response_model=ScoreResponse,
        dependencies=authenticated,
        tags=["scoring"],
        responses=_ERRORS,
    )
    async def score(
        dataset: str,
        body: ScoreRequest,
        model: Annotated[ServedModel, Depends(service.live_model)],
    ) -> JSONResponse:
        """Score customers by id (features from the online store) and/or inline rows."""
        total = len(body.customer_ids) + len(body.rows)
        if not 1 <= total <= config.max_ids_per_request:
            raise _unprocessable(
                ("body",),
                f"send 1 to {config.max_ids_per_request} customer_ids and rows in total, "
                f"got {total}",
            )
        parts: list[FeatureRows] = []
        results: list[tuple[str, str, str | None]] = []
        snapshot = None
        if body.customer_ids:
            stored, as_of, snapshot = await service.store_rows(dataset, body.customer_ids, model)
            parts.append(stored)
            results += [
                (c, "online_store", d) for c, d in zip(body.customer_ids, as_of, strict=True)
            ]
        if body.rows:
            parts.append(
                inline_feature_rows(body.rows, model.scorer.numeric, model.scorer.categorical)
            )
            results += [(row.customer_id, "inline", None) for row in body.rows]
        features = parts[0] if len(parts) == 1 else FeatureRows.concat(parts)
        reasons = model.scorer.explainer is not None
        if len(features) <= INLINE_SCORING_MAX_ROWS:
            scores = model.scorer.score(features, reasons=reasons)
        else:
            scores = await run_in_threadpool(model.scorer.score, features, reasons=reasons)
        return JSONResponse(
            _score_body(dataset, model, features, scores, results, snapshot),
            headers={MODEL_VERSION_HEADER: model.version},
        )

    @app.post(
        "/v1/{dataset}/score/batch",
        dependencies=authenticated,
        tags=["scoring"],
        response_class=StreamingResponse,
        responses={
            **_ERRORS,
            200: {
                "description": "one row per input row, in the layout of <ds>_monitoring.scores",
                "content": {
                    media: {"schema": {"type": "string", "format": "binary"}}
                    for media in batch.MEDIA_TYPES.values()
                },
            },
            415: {"model": ErrorBody, "description": "neither multipart nor JSON"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                            "required": ["file"],
                        }
                    },
                    "application/json": {"schema": BatchRequest.model_json_schema()},
                },
            }
        },
    )
    async def score_batch(
        dataset: str,
        request: Request,
        model: Annotated[ServedModel, Depends(service.live_model)],
        output: Annotated[
            batch.OutputFormat | None,
            Query(alias="format", description="parquet or csv (default: Accept, else parquet)"),
        ] = None,
        reasons: Annotated[bool, Query(description="add the top-3 drivers (slower)")] = True,
    ) -> StreamingResponse:
        """Score a parquet/CSV upload (``file``) or a month of the offline store
        (``{"observation_date": ...}``); the output streams as parquet or CSV."""
        fmt = batch.output_format(output, request.headers.get("accept"))
        media = request.headers.get("content-type", "")
        if media.startswith("multipart/form-data"):
            frame = await _uploaded_frame(request, model)
        elif media.startswith("application/json"):
            try:
                wanted = BatchRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                errors = exc.errors(include_url=False)
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in errors]
                ) from exc
            if service.offline is None:
                raise batch.OfflineStoreUnavailable("no offline store is configured")
            frame = await run_in_threadpool(
                service.offline.read_month, config.table_for(dataset), wanted.observation_date
            )
        else:
            raise HTTPException(
                415,
                "send multipart/form-data with a 'file' part, or application/json with "
                "'observation_date'",
            )
        checked = await run_in_threadpool(batch.BatchInput.from_frame, frame, model)
        return StreamingResponse(
            batch.stream_scores(
                model,
                checked,
                fmt,
                reasons=reasons and model.scorer.explainer is not None,
                chunk_rows=config.batch_chunk_rows,
            ),
            media_type=batch.MEDIA_TYPES[fmt],
            headers={
                MODEL_VERSION_HEADER: model.version,
                "Content-Disposition": f'attachment; filename="{dataset}-scores.{fmt}"',
            },
        )

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (each worker process builds its own app)."""
    return create_app(ServingConfig.from_env())
