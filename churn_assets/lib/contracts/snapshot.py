"""The snapshot contract: one row per customer, an id, a label and declared columns.

Each declared column has a type (integer, numeric, boolean, categorical) and, where known, its
allowed values, range or pattern; a blank is legal only where the declaration says when
(``blank_allowed_when``), and is then filled and flagged in ``<column>_imputed`` so the fill is
visible downstream. A snapshot with no rows is never valid: it would silently wipe the table.
"""

from __future__ import annotations

from pathlib import Path

import pandera.polars as pa
import polars as pl

from churn_assets.lib.contracts.files import read_table
from churn_assets.lib.contracts.problems import (
    ColumnNames,
    ContractViolation,
    Problem,
    casting_problems,
    raise_if,
    rows_of,
    rule_check,
    schema_problems,
    truncated_rows,
)
from churn_assets.lib.contracts.types import NUMERIC_LIMIT, SNAPSHOT_TYPES
from churn_assets.lib.datasets import DatasetSpec, SnapshotColumn

LABEL = "churn_label"
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def snapshot_columns(spec: DatasetSpec) -> list[str]:
    """Columns of ``<dataset>_raw.customers`` between the id and the label, in order."""
    out = []
    for column in spec.snap.columns:
        out.append(column.name)
        if column.fill_blank is not None:
            out.append(f"{column.name}_imputed")
    return out


def read_snapshot(spec: DatasetSpec, path: Path) -> pl.DataFrame:
    """Read and validate one customer file into ``customer_id``, the declared columns (typed),
    their ``_imputed`` flags and ``churn_label`` (boolean)."""
    source = str(path)
    snap = spec.snap
    mapping = {"customer_id": snap.id_column, LABEL: snap.label.column}
    mapping |= {c.name: c.column for c in snap.columns}
    name = ColumnNames(mapping)
    raw = read_table(path, spec.file_format(path))
    missing = [f"'{user}' ({ours})" for ours, user in mapping.items() if user not in raw.columns]
    if missing:
        raise ContractViolation(
            source, [f"missing column(s) {', '.join(missing)}; found {raw.columns}"]
        )
    raw = raw.select([pl.col(user).cast(pl.String).alias(ours) for ours, user in mapping.items()])
    raw = raw.with_columns(pl.all().str.strip_chars().replace("", None))
    if raw.height == 0:
        raise ContractViolation(
            source, ["no data rows: a snapshot with zero customers is never valid"]
        )
    raise_if(source, truncated_rows(raw, name))

    typed = raw.with_columns([_parse(c) for c in snap.columns] + [_label(spec).alias(LABEL)])
    problems = casting_problems(raw, typed, [c.name for c in snap.columns], name)
    problems += _label_problems(raw, typed, spec, name)
    problems += _blank_problems(raw, typed, spec, name)
    raise_if(source, problems)
    typed = typed.with_columns(
        expr
        for column in snap.columns
        if column.fill_blank is not None
        for expr in (
            pl.col(column.name).is_null().alias(f"{column.name}_imputed"),
            pl.col(column.name).fill_null(column.fill_blank),
        )
    )
    typed = typed.select("customer_id", *snapshot_columns(spec), LABEL)
    raise_if(source, schema_problems(_schema(spec), typed, name))
    return typed


def _parse(column: SnapshotColumn) -> pl.Expr:
    expr = pl.col(column.name)
    if column.type == "boolean":
        lowered = expr.str.to_lowercase()
        return (
            pl.when(lowered.is_in(list(_TRUE)))
            .then(1)
            .when(lowered.is_in(list(_FALSE)))
            .then(0)
            .cast(SNAPSHOT_TYPES["boolean"])
        )
    if column.type == "integer":
        as_float = expr.cast(pl.Float64, strict=False)
        return pl.when(as_float == as_float.round(0)).then(as_float).cast(pl.Int64, strict=False)
    return expr.cast(SNAPSHOT_TYPES[column.type], strict=False)


def _label(spec: DatasetSpec) -> pl.Expr:
    label = spec.snap.label
    return (
        pl.when(pl.col(LABEL).is_in(label.positive))
        .then(True)
        .when(pl.col(LABEL).is_in(label.negative))
        .then(False)
    )


def _label_problems(
    raw: pl.DataFrame, typed: pl.DataFrame, spec: DatasetSpec, name: ColumnNames
) -> list[Problem]:
    label = spec.snap.label
    bad = typed[LABEL].is_null()
    if not bad.any():
        return []
    return [
        Problem(
            name(LABEL),
            f"isin({label.positive + label.negative})",
            rows_of(bad),
            tuple(raw[LABEL].filter(bad).head(5).to_list()),
        )
    ]


def _blank_problems(
    raw: pl.DataFrame, typed: pl.DataFrame, spec: DatasetSpec, name: ColumnNames
) -> list[Problem]:
    """A blank is only legal where the declaration allows it (evaluated on the typed row)."""
    problems = []
    for column in [*spec.snap.columns]:
        blank = raw[column.name].is_null()
        if not blank.any():
            continue
        if column.blank_allowed_when is None:
            problems.append(Problem(name(column.name), "not null", rows_of(blank)))
            continue
        allowed = typed.select(pl.sql_expr(column.blank_allowed_when).fill_null(False)).to_series()
        bad = blank & ~allowed
        if bad.any():
            problems.append(
                Problem(
                    name(column.name), f"blank only when {column.blank_allowed_when}", rows_of(bad)
                )
            )
    bad_id = raw["customer_id"].is_null()
    if bad_id.any():
        problems.append(Problem(name("customer_id"), "not null", rows_of(bad_id)))
    return problems


def _column_checks(column: SnapshotColumn) -> list[pa.Check]:
    checks = []
    if column.values is not None:
        checks.append(pa.Check.isin(column.values))
    if column.type in ("integer", "numeric"):
        low = column.min if column.min is not None else -NUMERIC_LIMIT
        high = column.max if column.max is not None else NUMERIC_LIMIT
        checks.append(pa.Check.in_range(low, high))
    if column.pattern:
        checks.append(pa.Check.str_matches(column.pattern))
    return checks


def _schema(spec: DatasetSpec) -> pa.DataFrameSchema:
    snap = spec.snap
    id_checks = [pa.Check.str_matches(snap.id_pattern)] if snap.id_pattern else []
    columns: dict[str, pa.Column] = {
        "customer_id": pa.Column(pl.String, id_checks, unique=True),
        LABEL: pa.Column(pl.Boolean),
    }
    for column in snap.columns:
        columns[column.name] = pa.Column(SNAPSHOT_TYPES[column.type], _column_checks(column))
        if column.fill_blank is not None:
            columns[f"{column.name}_imputed"] = pa.Column(pl.Boolean)
    return pa.DataFrameSchema(
        columns,
        checks=[rule_check(r.name, r.check, r.description) for r in snap.rules],
        strict=True,
        name=f"{spec.name}_customers",
    )
