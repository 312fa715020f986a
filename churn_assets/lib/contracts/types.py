"""The one declaration of the contract's column types, shared by the contract and dbt.

The contract refuses any value the downstream types cannot hold, and the staging models cast
with these same SQL types (passed as the dbt var ``column_types``), so the two cannot disagree:
an amount the contract accepts always fits ``numeric(18, 3)``, and sums of a million such
amounts still fit the ``numeric(38, 3)`` DuckDB sums them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

NUMERIC_LIMIT = 1e12
"""Largest absolute value of any money or measure column: far above any real price or charge,
far below what a DECIMAL(18, 3) (1e15) or a window sum of a million rows can hold."""


@dataclass(frozen=True)
class FieldType:
    dtype: pl.DataType
    sql: str
    limit: float | None = None


EVENT_FIELDS: dict[str, FieldType] = {
    "customer_id": FieldType(pl.String(), "varchar"),
    "event_ts": FieldType(pl.Datetime("us"), "timestamp"),
    "order_id": FieldType(pl.String(), "varchar"),
    "product_id": FieldType(pl.String(), "varchar"),
    "quantity": FieldType(pl.Int32(), "integer"),
    "unit_price": FieldType(pl.Float64(), "double", NUMERIC_LIMIT),
    "amount": FieldType(pl.Float64(), "numeric(18, 3)", NUMERIC_LIMIT),
    "event_type": FieldType(pl.String(), "varchar"),
}
EVENT_TYPES = ("purchase", "return", "cancellation")

SNAPSHOT_TYPES: dict[str, pl.DataType] = {
    "integer": pl.Int64(),
    "numeric": pl.Float64(),
    "boolean": pl.Int32(),
    "categorical": pl.String(),
}


def dbt_column_types() -> dict[str, str]:
    """The SQL types staging casts to, from the same declaration the contract checks."""
    return {name: field.sql for name, field in EVENT_FIELDS.items() if field.limit is not None}
