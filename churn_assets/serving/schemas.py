"""Request and response bodies of the scoring API (what ``/docs`` shows).

Inline feature rows are the one body whose shape depends on the model: their feature names
and types are checked against the live model in :func:`inline_feature_rows`, which reports
every problem with its location the way FastAPI reports schema errors (422, ``loc`` naming
the row and the field).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Annotated, Any, Literal

import numpy as np
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
)

from churn_assets.lib.modeling import MISSING_CATEGORY
from churn_assets.serving.config import MAX_IDS_CEILING
from churn_assets.serving.scoring import FeatureRows

CustomerId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
FeatureValue = StrictFloat | StrictInt | StrictBool | StrictStr | None


class InlineRow(BaseModel):
    """A customer's raw features given in the request (what-if, or not in the store).

    Every feature of the model must be present; ``null`` means missing, as in the store.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [{"customer_id": "what-if-1", "recency_days": 12, "country": "UK"}]
        },
    )
    __pydantic_extra__: dict[str, FeatureValue] = Field(init=False)

    customer_id: CustomerId


class ScoreRequest(BaseModel):
    """Customers to score: ids looked up in the online store and/or inline feature rows."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"customer_ids": ["12346", "12347"]}]},
    )

    customer_ids: list[CustomerId] = Field(default_factory=list, max_length=MAX_IDS_CEILING)
    rows: list[InlineRow] = Field(default_factory=list, max_length=MAX_IDS_CEILING)


class Reason(BaseModel):
    feature: str
    value: float | str | None = Field(description="the raw value the model saw (null: missing)")
    contribution: float = Field(description="signed log-odds contribution; > 0 raises risk")


class ScoreResult(BaseModel):
    customer_id: str
    source: Literal["online_store", "inline"]
    probability: float
    risk_decile: int = Field(ge=1, le=10, description="10 = riskiest tenth of training scores")
    as_of: date | None = Field(description="observation date of the stored features")
    reasons: list[Reason]
    model_version: str


class ScoreResponse(BaseModel):
    dataset: str
    model_name: str
    model_version: str
    snapshot_version: str | None = Field(description="online-store snapshot that was read")
    feature_set_version: str | None
    results: list[ScoreResult]


class BatchRequest(BaseModel):
    """Score one observation date of the offline store."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"observation_date": "2011-12-01"}]}
    )

    observation_date: date


class ModelInfo(BaseModel):
    dataset: str
    model_name: str
    version: str
    alias: str
    run_id: str
    training_set_version: str
    provenance_id: str | None
    training_set: dict[str, str] = Field(description="the run's training_set.* tags")
    features: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    metrics: dict[str, float | None] = Field(description="the run's test metrics")
    trained_at: datetime | None
    loaded_at: datetime
    explainer: str | None
    fast_path: bool
    last_reload_error: str | None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    not_loaded: list[str]


class ReloadResult(BaseModel):
    dataset: str
    previous_version: str | None
    version: str | None
    changed: bool
    error: str | None


class ReloadResponse(BaseModel):
    results: list[ReloadResult]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    reasons: list[str] = Field(default_factory=list)


class ErrorBody(BaseModel):
    detail: Any


def _error(
    kind: str, loc: tuple[str | int, ...], message: str, value: Any = None
) -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": message, "input": value}


def _number(value: FeatureValue, loc: tuple[str | int, ...]) -> tuple[float, dict[str, Any] | None]:
    if value is None:
        return math.nan, None
    if isinstance(value, str):
        return math.nan, _error("float_type", loc, "Input should be a number or null", value)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        return math.nan, _error("finite_number", loc, "Input should be a finite number", None)
    return number, None


def inline_feature_rows(
    rows: list[InlineRow], numeric: list[str], categorical: list[str]
) -> FeatureRows:
    """Inline rows as model input; raises ``RequestValidationError`` listing every bad field."""
    numbers = np.full((len(rows), len(numeric)), np.nan)
    texts = np.full((len(rows), len(categorical)), MISSING_CATEGORY, dtype=object)
    errors = []
    for i, row in enumerate(rows):
        values = row.model_extra or {}
        for j, name in enumerate([*numeric, *categorical]):
            loc = ("body", "rows", i, name)
            if name not in values:
                errors.append(_error("missing", loc, "Field required (a feature of the model)"))
                continue
            value = values[name]
            if j < len(numeric):
                numbers[i, j], problem = _number(value, loc)
                if problem:
                    errors.append(problem)
            elif isinstance(value, str):
                texts[i, j - len(numeric)] = value
            elif value is not None:
                errors.append(_error("string_type", loc, "Input should be a string or null", value))
    if errors:
        raise RequestValidationError(errors)
    return FeatureRows(numeric=numbers, categorical=texts)
