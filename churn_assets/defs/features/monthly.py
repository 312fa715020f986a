"""Per-observation-month retail features + labels, the input of scoring and drift.

dbt builds the whole feature table at once (cheap: it is a sum over daily tiles); this asset
snapshots one month of it into ``features.retail_features_monthly`` so each month is an addressable
partition with its own materialization history. A backfill of many months runs as one run
(``BackfillPolicy.single_run``) and replaces exactly those months in one transaction.
"""

from datetime import date
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from duckdb import DuckDBPyConnection

from churn_assets.lib import features_registry
from churn_assets.lib.duckdb_io import table_exists
from churn_assets.partitions import observation_months
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_DATA

SCHEMA = "features"
TABLE = "retail_features_monthly"

_FEATURES = ", ".join(
    f"f.{name}" for name in (f.name for f in features_registry.features_of("fct_retail_features"))
)
# Every customer active at T (a purchase in [T - 90d, T)), its features at T and its label
# (NULL while immature). fct_retail_labels holds exactly the active (customer, T) pairs.
_SELECT = f"""
    select f.customer_id, f.observation_date, {_FEATURES}, l.churned, l.is_mature
    from {SCHEMA}.fct_retail_labels as l
    join {SCHEMA}.fct_retail_features as f
      on f.customer_id = l.customer_id and f.observation_date = l.observation_date
    where l.observation_date >= ? and l.observation_date < ?
"""


def _one_row(con: DuckDBPyConnection, sql: str, params: list[date]) -> tuple[Any, ...]:
    row = con.execute(sql, params).fetchone()
    assert row is not None, "aggregate queries always return a row"
    return row


def _columns(con: DuckDBPyConnection, sql: str, params: list[date]) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM ({sql}) LIMIT 0", params).description]


def replace_months(con: DuckDBPyConnection, start: date, end: date) -> int:
    """Replace the rows of observation dates in [start, end) atomically; return rows written.

    When the feature definitions changed the columns, the old months are dropped with the old
    table: they were computed under another registry version, and Dagster shows them stale.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        if table_exists(con, SCHEMA, TABLE) and _columns(
            con, f"SELECT * FROM {SCHEMA}.{TABLE}", []
        ) != _columns(con, _SELECT, [start, end]):
            con.execute(f"DROP TABLE {SCHEMA}.{TABLE}")
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{TABLE} AS {_SELECT} LIMIT 0",
            [start, end],
        )
        con.execute(
            f"DELETE FROM {SCHEMA}.{TABLE} WHERE observation_date >= ? AND observation_date < ?",
            [start, end],
        )
        con.execute(f"INSERT INTO {SCHEMA}.{TABLE} {_SELECT}", [start, end])
        (written,) = _one_row(
            con,
            f"SELECT count(*) FROM {SCHEMA}.{TABLE} "
            "WHERE observation_date >= ? AND observation_date < ?",
            [start, end],
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(written)


@dg.asset(
    key=TABLE,
    group_name="features",
    owners=[OWNER_DATA],
    kinds={"duckdb"},
    partitions_def=observation_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["fct_retail_features", "fct_retail_labels"],
    pool="duckdb",
    code_version=features_registry.registry_hash("fct_retail_features"),
    metadata={"table": f"{SCHEMA}.{TABLE}"},
)
def retail_features_monthly(
    context: AssetExecutionContext, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """Features and label of every customer active at T, for the partition's month(s)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    with duckdb.connect() as con:
        written = replace_months(con, start, end)
        n_labelled, churn_rate = _one_row(
            con,
            f"SELECT count(churned), coalesce(avg(churned), 0) FROM {SCHEMA}.{TABLE} "
            "WHERE observation_date >= ? AND observation_date < ?",
            [start, end],
        )
    context.log.info("replaced %d rows for [%s, %s)", written, start, end)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "observation_dates": f"[{start}, {end})",
            "matured_labels": int(n_labelled),
            "churn_rate": float(churn_rate),
        }
    )
