"""Row-for-row comparison of two builds of the same table (DuckDB vs Spark, incremental vs full).

Both sides are DuckDB relations (Spark's marts come back into DuckDB, its lake tables are read
with ``read_parquet``). Rows are matched on the table's key; a row counts as a mismatch when it
is missing on one side or any column differs: integers, text, dates and booleans exactly,
floating-point columns by more than ``tolerance`` (money: half a cent).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")
MONEY_TOLERANCE = 0.005
KEYS = {
    "fct_features": ("customer_id", "observation_date"),
    "fct_labels": ("customer_id", "observation_date"),
    "fct_training_spine": ("customer_id", "observation_date"),
    "fct_snapshot_features": ("customer_id", "observation_date"),
    "int_daily_tiles": ("customer_id", "tile_date"),
    "int_purchase_history": ("customer_id", "tile_date"),
    "int_product_days": ("customer_id", "tile_date", "previous_purchase_date"),
}
"""The key of every table compared across engines (a row's identity)."""


@dataclass(frozen=True)
class Comparison:
    table: str
    left_rows: int
    right_rows: int
    mismatches: int
    """Rows missing on one side or differing in a column (beyond the tolerance for floats)."""
    identical_rows: int
    """Matched rows equal in every column, bit for bit (floats too)."""

    @property
    def equal(self) -> bool:
        return self.mismatches == 0 and self.left_rows == self.right_rows


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [
        (row[0], str(row[1]))
        for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    ]


def compare(
    con: duckdb.DuckDBPyConnection,
    table: str,
    left: str,
    right: str,
    tolerance: float = MONEY_TOLERANCE,
) -> Comparison:
    """Compare relations ``left`` and ``right`` (SQL relation expressions) of table ``table``."""
    keys = KEYS[table]
    columns = [(name, kind) for name, kind in _columns(con, left) if name not in keys]
    differs = [
        f"abs(l.{name} - r.{name}) > {tolerance} OR (l.{name} IS NULL) <> (r.{name} IS NULL)"
        if kind.upper() in FLOAT_TYPES
        else f"l.{name} IS DISTINCT FROM r.{name}"
        for name, kind in columns
    ]
    identical = " AND ".join(f"l.{name} IS NOT DISTINCT FROM r.{name}" for name, _ in columns)
    on = " AND ".join(f"l.{k} IS NOT DISTINCT FROM r.{k}" for k in keys)
    row = con.execute(
        f"""
        SELECT
            count(l.{keys[0]}_present),
            count(r.{keys[0]}_present),
            count(*) FILTER (WHERE l.{keys[0]}_present IS NULL OR r.{keys[0]}_present IS NULL
                OR {" OR ".join(differs) or "false"}),
            count(*) FILTER (WHERE l.{keys[0]}_present AND r.{keys[0]}_present
                AND {identical or "true"})
        FROM (SELECT *, true AS {keys[0]}_present FROM {left}) AS l
        FULL OUTER JOIN (SELECT *, true AS {keys[0]}_present FROM {right}) AS r ON {on}
        """
    ).fetchone()
    assert row is not None
    return Comparison(table, *row)
