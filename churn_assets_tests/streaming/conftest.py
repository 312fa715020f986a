"""Stream tests against a real Redis (the session's ``redis_server``): every test streams a
dataset of its own name, so tests never share keys; one tiny champion for all of them."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream.events import StreamEvent
from churn_assets.lib.stream.state import BatchState
from churn_assets.lib.training_set import TrainingSet
from churn_assets.serving.models import ServedModel
from churn_assets.serving.scoring import Scorer
from churn_assets_tests.serving.fixtures import XGB_PARAMS, train
from churn_assets_tests.streaming.fixtures import reference_state

_names = itertools.count()


@pytest.fixture
def spec(specs: dict[str, DatasetSpec]) -> DatasetSpec:
    """The retail declaration under a name of this test's own (its Redis keys)."""
    return specs["retail"].model_copy(update={"name": f"stream_{next(_names)}"})


def batch_of(events: list[StreamEvent], as_of: date, first_day: date) -> BatchState:
    """What the batch store holds for these events before ``as_of``."""
    tiles, products = [], []
    by_customer: dict[str, list[StreamEvent]] = {}
    for item in events:
        if item.event_ts < datetime.combine(as_of, datetime.min.time()):
            by_customer.setdefault(item.customer_id or "", []).append(item)
    for customer, own in by_customer.items():
        state = reference_state(own)
        tiles += [(customer, day, *tile) for day, tile in state.tiles.items()]
        products += [(customer, day, p) for day, bought in state.products.items() for p in bought]
    return BatchState(
        as_of=as_of,
        first_day=first_day,
        tiles=pl.DataFrame(
            tiles, schema=["customer_id", "day", "m0", "m1", "m2", "m3", "m4"], orient="row"
        ),
        products=pl.DataFrame(products, schema=["customer_id", "day", "product_id"], orient="row"),
        source="test",
    )


@pytest.fixture(scope="session")
def tiny_champion(
    tmp_path_factory: pytest.TempPathFactory, specs: dict[str, DatasetSpec]
) -> ServedModel:
    """A small XGBoost over every retail feature, on random rows, served as v7."""
    features = feature_set(specs["retail"])
    rng = np.random.default_rng(0)
    n = 600
    frame = pl.DataFrame(
        {
            "customer_id": [str(i) for i in range(n)],
            "observation_date": [date(2011, 1, 1)] * n,
            **{name: rng.gamma(2.0, 20.0, n) for name in features.numeric},
        }
    ).with_columns(churned=(pl.col("recency_days") > 40).cast(pl.Int32))
    path: Path = tmp_path_factory.mktemp("tiny_champion")
    frame.write_parquet(path / "training_set.parquet")
    ts = TrainingSet("retail", "tiny", path, features.numeric, ())
    model, _ = train(ts, XGB_PARAMS)
    return ServedModel(
        dataset="retail",
        name="churn-retail",
        version="7",
        alias="champion",
        run_id="test",
        scorer=Scorer(model, frame),
        training_set_version="tiny",
        provenance_id=None,
        training_set_tags={},
        metrics={},
        trained_at=None,
        loaded_at=datetime.now(UTC),
    )
