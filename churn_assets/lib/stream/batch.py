"""The batch store's side of the hand-over: the offline tiles a stream continues from.

Read-only queries on the dbt tables of one events dataset: ``int_daily_tiles`` (the same
additive partials the stream keeps, money as exact decimals turned into thousandths),
``stg_events`` for the product days a window can still reach, and the first day of the raw
data (``fct_features`` leaves windows that start before it NULL).
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.stream.events import EPOCH
from churn_assets.lib.stream.state import BatchState


class BatchNotBuilt(LookupError):
    """The batch store has no feature tables for the dataset yet (run the graph first)."""


def newest_observation(con: duckdb.DuckDBPyConnection, spec: DatasetSpec) -> date:
    """The newest observation date of the feature table: the batch's as-of by default."""
    try:
        (row,) = con.sql(
            f"SELECT max(observation_date) FROM {spec.db_schema('features')}.fct_features"
        ).fetchall()
    except duckdb.CatalogException as exc:
        raise BatchNotBuilt(f"{spec.name}: the feature tables are not built yet") from exc
    if row[0] is None:
        raise BatchNotBuilt(f"{spec.name}: the feature table is empty")
    return row[0]


def read_batch(
    con: duckdb.DuckDBPyConnection, spec: DatasetSpec, as_of: date, source: str
) -> BatchState:
    """The offline state at ``as_of`` (a midnight): every tile of a day before it, and the
    products bought in the last ``max(windows)`` days before it."""
    intermediate, staging = spec.db_schema("intermediate"), spec.db_schema("staging")
    epoch = EPOCH.isoformat()
    try:
        tiles = con.sql(
            f"""
            SELECT customer_id, datediff('day', DATE '{epoch}', tile_date) AS day,
                   n_orders AS m0, n_lines AS m1, CAST(revenue * 1000 AS BIGINT) AS m2,
                   n_returns AS m3, CAST(return_value * 1000 AS BIGINT) AS m4
            FROM {intermediate}.int_daily_tiles WHERE tile_date < ?
            ORDER BY customer_id, tile_date
            """,
            params=[as_of],
        ).pl()
        products = con.sql(
            f"""
            SELECT DISTINCT customer_id, datediff('day', DATE '{epoch}', event_date) AS day,
                   product_id
            FROM {staging}.stg_events
            WHERE event_type = 'purchase' AND product_id IS NOT NULL
              AND event_date >= ? AND event_date < ?
            """,
            params=[as_of - timedelta(days=max(spec.ev.windows)), as_of],
        ).pl()
        (first,) = con.sql(
            f"SELECT CAST(min(event_ts) AS DATE) FROM {spec.db_schema('raw')}.events"
        ).fetchall()
    except duckdb.CatalogException as exc:
        raise BatchNotBuilt(f"{spec.name}: the tile tables are not built yet ({exc})") from exc
    if first[0] is None:
        raise BatchNotBuilt(f"{spec.name}: the raw events table is empty")
    return BatchState(
        as_of=as_of, first_day=first[0], tiles=tiles, products=products, source=source
    )
