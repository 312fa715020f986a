"""Start (or restart) the online state from the batch store: the hand-over, from the CLI side.

The DuckDB file is opened read-only under the platform's shared lock, so a bootstrap never
reads a table a dbt build is replacing, and never blocks other readers.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.batch import BatchNotBuilt, newest_observation, read_batch
from churn_assets.resources import DuckDBResource

if TYPE_CHECKING:
    import redis


def bootstrap(
    client: redis.Redis, spec: DatasetSpec, duckdb_path: str, as_of: date | None = None
) -> store.HandOver:
    """Make the batch tiles before ``as_of`` (default: the newest observation date of the
    feature table) the online state, with the streamed events since then carried over."""
    with DuckDBResource(path=duckdb_path).connect(read_only=True) as con:
        newest = newest_observation(con, spec)
        if as_of is not None and as_of > newest:
            raise BatchNotBuilt(
                f"{spec.name}: the batch store knows the events before {newest} only; a state "
                f"as of {as_of} would miss the ones in between (build the batch further first)"
            )
        batch = read_batch(con, spec, as_of or newest, source=duckdb_path)
    return store.hand_over(client, spec.name, batch, feature_set(spec).registry_hash)
