"""Atomic table replacement in DuckDB: build aside, then swap in one transaction.

A reader either sees the whole previous table or the whole new one, and a failure before
the swap leaves the last good table untouched.
"""

from __future__ import annotations

import duckdb


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def staging_name(table: str) -> str:
    return f"{table}__incoming"


def swap_in(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    """Replace ``schema.table`` with ``schema.<table>__incoming`` atomically."""
    target = f"{quote(schema)}.{quote(table)}"
    incoming = f"{quote(schema)}.{quote(staging_name(table))}"
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DROP TABLE IF EXISTS {target}")
        con.execute(f"ALTER TABLE {incoming} RENAME TO {quote(table)}")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def drop_staging(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {quote(schema)}.{quote(staging_name(table))}")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])
