"""Atomic writes to DuckDB: build aside, then swap or replace rows in one transaction.

A reader either sees the whole previous table or the whole new one, and a failure before the
swap leaves the last good table untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import polars as pl


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN … COMMIT, or ROLLBACK and re-raise."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> Iterator[str]:
    """Expose a Polars frame to SQL as ``name`` for the duration of the block."""
    con.register(name, frame.to_arrow())
    try:
        yield name
    finally:
        con.unregister(name)


def replace_tables(
    con: duckdb.DuckDBPyConnection, schema: str, tables: Mapping[str, pl.DataFrame]
) -> None:
    """Create every ``<table>__incoming`` from its frame, then swap them all in one transaction:
    tables written together (data and its load record) are never seen out of step."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    for table, frame in tables.items():
        incoming = qualified(schema, f"{table}__incoming")
        con.execute(f"DROP TABLE IF EXISTS {incoming}")
        with registered(con, "incoming_frame", frame):
            con.execute(f"CREATE TABLE {incoming} AS SELECT * FROM incoming_frame")
    with transaction(con):
        for table in tables:
            con.execute(f"DROP TABLE IF EXISTS {qualified(schema, table)}")
            con.execute(
                f"ALTER TABLE {qualified(schema, f'{table}__incoming')} RENAME TO {quote(table)}"
            )


def replace_table(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, frame: pl.DataFrame
) -> None:
    replace_tables(con, schema, {table: frame})


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    frame: pl.DataFrame,
    where: str,
    params: Sequence[Any] = (),
) -> None:
    """Delete the rows matching ``where`` and insert ``frame`` in one transaction (the table is
    created from the frame's shape on first use; other rows are never touched)."""
    target = qualified(schema, table)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    with registered(con, "incoming_rows", frame):
        con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM incoming_rows LIMIT 0")
        with transaction(con):
            con.execute(f"DELETE FROM {target} WHERE {where}", list(params))
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM incoming_rows")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def row_count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int | None:
    """Rows of the table, or None when it does not exist yet."""
    if not table_exists(con, schema, table):
        return None
    row = con.execute(f"SELECT count(*) FROM {qualified(schema, table)}").fetchone()
    return int(row[0]) if row else 0
