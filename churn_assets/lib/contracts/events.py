"""The events contract: any business's purchase log, mapped by its declaration.

Required: a customer id, an event time and an amount (or quantity and unit price, whose product
is the amount). Optional: order id (else each row is one order), product id, quantity, an event
type column (else derived: cancellation when the declaration says so, return when the quantity,
or without one the amount, is negative, purchase otherwise) and segment columns. Checks that
hold for any business: types, required values present, finite numbers that fit the downstream
types, no future timestamps, nothing before the declared earliest date. The dataset's own rules
and exclusions come from its declaration.

Every row gets ``event_id``, a stable content key: the same event delivered again, in another
file, name, encoding or compression, gets the same key, which is what makes ingestion
idempotent on events rather than on file bytes. Identical rows inside one delivery (real data
repeats lines) are told apart by their occurrence number.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import pandera.polars as pa
import polars as pl

from churn_assets.lib.contracts.files import read_table
from churn_assets.lib.contracts.problems import (
    ColumnNames,
    ContractViolation,
    Problem,
    casting_problems,
    null_problems,
    raise_if,
    rows_of,
    rule_check,
    schema_problems,
)
from churn_assets.lib.contracts.types import EVENT_FIELDS, EVENT_TYPES
from churn_assets.lib.datasets import DatasetSpec

EARLIEST_SANE = datetime(1900, 1, 1)
KEY_FIELDS = (
    "customer_id",
    "event_ts",
    "order_id",
    "product_id",
    "quantity",
    "unit_price",
    "amount",
    "event_type",
)


def events_columns(spec: DatasetSpec) -> list[str]:
    """Columns of ``<dataset>_raw.events``, in order."""
    segments = [f"segment_{name}" for name in spec.ev.columns.segments]
    return ["event_id", *EVENT_FIELDS, *segments, "exclude_reason", "source_file"]


def read_events(spec: DatasetSpec, path: Path, now: datetime | None = None) -> pl.DataFrame:
    """Read and validate one events file into the raw table's shape (see :func:`events_columns`).

    Raises :class:`ContractViolation` naming the file, the user's column and the rows.
    """
    source = str(path)
    ev = spec.ev
    mapping = {k: v for k, v in ev.columns.model_dump().items() if k != "segments" and v}
    mapping |= {f"segment_{k}": v for k, v in ev.columns.segments.items()}
    name = ColumnNames(mapping)
    raw = read_table(path, spec.file_format(path))
    if raw.height == 0:
        raise ContractViolation(source, ["no data rows: an empty file is never a valid delivery"])
    missing = [f"'{user}' ({ours})" for ours, user in mapping.items() if user not in raw.columns]
    if missing:
        raise ContractViolation(
            source, [f"missing column(s) {', '.join(missing)}; found {raw.columns}"]
        )
    raw = raw.select([pl.col(user).alias(ours) for ours, user in mapping.items()])
    typed = raw.with_columns(_parse(column, raw[column].dtype, spec) for column in raw.columns)
    problems = casting_problems(raw, typed, raw.columns, name)
    required = [c for c in raw.columns if c != "customer_id" or ev.missing_customer == "refuse"]
    problems += null_problems(raw, required, name)
    raise_if(source, problems)

    typed = _derive(typed, spec)
    raise_if(source, schema_problems(_schema(spec, now or datetime.now()), typed, name))
    typed = _classify(typed, spec, source, name)
    return _with_keys(typed, spec, path.name)


def _parse(column: str, current: pl.DataType, spec: DatasetSpec) -> pl.Expr:
    """Cast one mapped column to its contract type; unparseable values become NULL and are
    reported by :func:`casting_problems` with their row and raw text."""
    target = EVENT_FIELDS[column].dtype if column in EVENT_FIELDS else pl.String()
    expr = pl.col(column)
    if column == "event_ts":
        return _parse_timestamps(expr, current, spec)
    if target == pl.String:
        if current.is_float():
            # ids exported through a float column (12346.0) keep their integer text
            expr = pl.when(expr == expr.round(0)).then(expr.cast(pl.Int64, strict=False))
        return expr.cast(pl.String).str.strip_chars()
    if current == pl.String:
        expr = expr.str.strip_chars()
        if target.is_integer():
            # "12.0" is an integer written by a spreadsheet; "12.5" is not and stays an error
            as_float = expr.cast(pl.Float64, strict=False)
            return pl.when(as_float == as_float.round(0)).then(as_float).cast(target, strict=False)
    return expr.cast(target, strict=False)


def _parse_timestamps(expr: pl.Expr, current: pl.DataType, spec: DatasetSpec) -> pl.Expr:
    """Text with the declared format (ISO-8601 when none), or the file's own temporal type, as
    wall-clock time of the dataset's timezone. Text that carries a UTC offset (``+01:00``,
    ``Z``) is converted into that timezone; text without one already is its wall-clock time.
    A native timezone-aware column is normalized by :func:`_local_time`."""
    if current == pl.String:
        fmt = spec.ev.timestamps.format
        text = expr.str.strip_chars()
        offset = text.str.contains(r"(Z|[+-][0-9]{2}:?[0-9]{2})$")
        # parsed separately: Polars infers one format per column from its first value
        aware = (
            pl.when(offset)
            .then(text)
            .str.to_datetime(
                format=fmt, strict=False, time_unit="us", time_zone=spec.ev.timestamps.timezone
            )
            .dt.replace_time_zone(None)
        )
        naive = (
            pl.when(~offset).then(text).str.to_datetime(format=fmt, strict=False, time_unit="us")
        )
        return pl.when(offset).then(aware).otherwise(naive)
    if isinstance(current, pl.Datetime):
        return expr.dt.cast_time_unit("us")
    return expr.cast(pl.Datetime("us"), strict=False)


def event_times(spec: DatasetSpec, raw: pl.DataFrame) -> pl.Series:
    """The event time of every row of a file in the user's shape, as the contract reads it
    (NULL where it does not parse): the replay cuts months of the user's own files with it."""
    column = spec.ev.columns.event_ts
    parsed = raw.select(_parse_timestamps(pl.col(column), raw[column].dtype, spec)).to_series()
    return _local_time(parsed.to_frame("event_ts"), spec)["event_ts"]


def _local_time(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    if isinstance(frame.schema["event_ts"], pl.Datetime) and frame.schema["event_ts"].time_zone:
        return frame.with_columns(
            pl.col("event_ts")
            .dt.convert_time_zone(spec.ev.timestamps.timezone)
            .dt.replace_time_zone(None)
        )
    return frame


def _derive(frame: pl.DataFrame, spec: DatasetSpec) -> pl.DataFrame:
    """Local wall-clock time of the dataset's timezone (days and month starts are the business's
    own calendar), amount from quantity x unit price when the data has no amount, and the
    contract's optional columns the data does not have, as NULL."""
    columns = spec.ev.columns
    frame = _local_time(frame, spec)
    if columns.amount is None:
        frame = frame.with_columns(
            amount=pl.col("quantity").cast(pl.Float64) * pl.col("unit_price")
        )
    for column, field in EVENT_FIELDS.items():
        if column not in frame.columns and column != "event_type":
            frame = frame.with_columns(pl.lit(None, dtype=field.dtype).alias(column))
    return frame


def _bounded(column: str, limit: float) -> pa.Check:
    return pa.Check(
        lambda data: data.lazyframe.select(
            pl.col(column).is_null()
            | (pl.col(column).is_finite() & (pl.col(column).abs() <= limit))
        ),
        name=f"finite and |x| <= {limit:g}",
        error=f"{column} must be a finite number within ±{limit:g}",
    )


def _schema(spec: DatasetSpec, now: datetime) -> pa.DataFrameSchema:
    ev = spec.ev
    earliest = (
        datetime.combine(ev.timestamps.earliest, datetime.min.time())
        if ev.timestamps.earliest
        else EARLIEST_SANE
    )
    columns: dict[str, pa.Column] = {
        name: pa.Column(
            field.dtype,
            checks=[_bounded(name, field.limit)] if field.limit else [],
            nullable=True,
        )
        for name, field in EVENT_FIELDS.items()
        if name != "event_type"
    }
    columns["event_ts"] = pa.Column(
        pl.Datetime("us"),
        pa.Check.in_range(earliest, now),
        nullable=False,
    )
    return pa.DataFrameSchema(
        columns,
        checks=[rule_check(r.name, r.check, r.description) for r in ev.rules],
        strict="filter",
        name=f"{spec.name}_events",
    )


def _classify(
    frame: pl.DataFrame, spec: DatasetSpec, source: str, name: ColumnNames
) -> pl.DataFrame:
    """``event_type`` from the declared column's values or derived; ``exclude_reason`` from the
    declared exclusions (first match wins)."""
    types = spec.ev.event_types
    if "event_type" in frame.columns:
        lookup: dict[str, str] = {v: kind for kind, values in types.values.items() for v in values}
        lookup |= {kind: kind for kind in EVENT_TYPES}
        mapped = frame["event_type"].replace_strict(lookup, default=None, return_dtype=pl.String)
        unknown = mapped.is_null()
        if unknown.any():
            raise_if(
                source,
                [
                    Problem(
                        name("event_type"),
                        f"one of {sorted(lookup)}",
                        rows_of(unknown),
                        tuple(frame["event_type"].filter(unknown).head(5).to_list()),
                    )
                ],
            )
        frame = frame.with_columns(event_type=mapped)
    else:
        sign = pl.coalesce(pl.col("quantity").cast(pl.Float64), pl.col("amount"))
        derived = pl.when(sign < 0).then(pl.lit("return")).otherwise(pl.lit("purchase"))
        if types.cancellation_when:
            derived = (
                pl.when(pl.sql_expr(types.cancellation_when).fill_null(False))
                .then(pl.lit("cancellation"))
                .otherwise(derived)
            )
        frame = frame.with_columns(event_type=derived)
    reason: pl.Expr = pl.lit(None, dtype=pl.String)
    for exclusion in reversed(spec.ev.exclude):
        reason = (
            pl.when(pl.sql_expr(exclusion.when).fill_null(False))
            .then(pl.lit(exclusion.reason))
            .otherwise(reason)
        )
    return frame.with_columns(exclude_reason=reason)


def _with_keys(frame: pl.DataFrame, spec: DatasetSpec, file_name: str) -> pl.DataFrame:
    """Content key per row (+ occurrence among identical rows), order id fallback, column order."""
    content = pl.concat_str(
        [pl.col(c).cast(pl.String).fill_null("∅") for c in KEY_FIELDS if c in frame.columns],
        separator="\x1f",
    )
    frame = frame.with_columns(_content=content)
    frame = frame.with_columns(_occurrence=pl.int_range(pl.len()).over("_content"))
    keys = [
        hashlib.blake2b(text.encode(), digest_size=12).hexdigest() + f":{occurrence}"
        for text, occurrence in zip(
            frame["_content"].to_list(), frame["_occurrence"].to_list(), strict=True
        )
    ]
    frame = frame.with_columns(
        event_id=pl.Series(keys, dtype=pl.String), source_file=pl.lit(file_name)
    )
    if spec.ev.columns.order_id is None:
        frame = frame.with_columns(order_id=pl.col("event_id"))
    return frame.select(events_columns(spec))
