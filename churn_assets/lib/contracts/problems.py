"""How a contract says what is wrong: the file, the user's column, the check and the rows.

Row numbers are 1-based data rows (the header of a CSV is not counted), so a user can open the
file and find the line. Columns are named the way the user's file names them, followed by the
contract's name when the two differ ("column 'InvoiceDate' (event_ts)").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

MAX_REPORTED_ROWS = 5


@dataclass(frozen=True)
class Problem:
    column: str
    check: str
    rows: tuple[int, ...]
    values: tuple[object, ...] = ()

    def describe(self) -> str:
        shown = ", ".join(str(r) for r in self.rows[:MAX_REPORTED_ROWS])
        extra = len(self.rows) - MAX_REPORTED_ROWS
        more = f" (+{extra} more)" if extra > 0 else ""
        values = ", ".join(_short(v) for v in self.values[:MAX_REPORTED_ROWS])
        found = f": values [{values}]" if values else ""
        where = f" at data rows [{shown}]{more}" if self.rows else ""
        return f"{self.column} failed {self.check}{where}{found}"


class ContractViolation(ValueError):
    """A file broke its contract; the message is written for the person who supplied it."""

    def __init__(self, source: str, problems: list[str], details: tuple[Problem, ...] = ()) -> None:
        self.source = source
        self.problems = problems
        self.details = details
        super().__init__(f"{source}: " + "; ".join(problems))

    @classmethod
    def of(cls, source: str, problems: list[Problem]) -> ContractViolation:
        return cls(source, [p.describe() for p in problems], tuple(problems))


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rows_of(mask: pl.Series) -> tuple[int, ...]:
    return tuple(i + 1 for i in mask.arg_true().to_list())


class ColumnNames:
    """Contract name -> how to name the column to the user (their header, then ours)."""

    def __init__(self, user_names: Mapping[str, str]) -> None:
        self.user_names = dict(user_names)

    def __call__(self, column: str) -> str:
        user = self.user_names.get(column)
        if user is None or user == column:
            return f"column '{column}'"
        return f"column '{user}' ({column})"


def raise_if(source: str, problems: list[Problem]) -> None:
    if problems:
        raise ContractViolation.of(source, problems)


def casting_problems(
    raw: pl.DataFrame, typed: pl.DataFrame, columns: list[str], name: ColumnNames
) -> list[Problem]:
    """Values present in the file that did not parse as the declared type."""
    problems = []
    for column in columns:
        bad = raw[column].is_not_null() & typed[column].is_null()
        if bad.any():
            problems.append(
                Problem(
                    name(column),
                    f"type {typed[column].dtype}",
                    rows_of(bad),
                    tuple(raw[column].filter(bad).head(MAX_REPORTED_ROWS).to_list()),
                )
            )
    return problems


def null_problems(frame: pl.DataFrame, columns: list[str], name: ColumnNames) -> list[Problem]:
    return [
        Problem(name(c), "not null", rows_of(frame[c].is_null()))
        for c in columns
        if frame[c].is_null().any()
    ]


def schema_problems(
    schema: pa.DataFrameSchema, frame: pl.DataFrame, name: ColumnNames
) -> list[Problem]:
    """Run a pandera schema lazily and group its failure cases per (column, check)."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        problems = []
        for (column, check), group in cases.group_by(["column", "check"], maintain_order=True):
            rows = tuple(int(i) + 1 for i in group["index"].to_list() if i is not None)
            row_rule = column is None or column == schema.name
            values = tuple(group["failure_case"].head(MAX_REPORTED_ROWS).to_list())
            label = "row rule" if row_rule else name(str(column))
            problems.append(Problem(label, str(check), rows, () if row_rule else values))
        return problems
    return []


def truncated_rows(raw: pl.DataFrame, name: ColumnNames) -> list[Problem]:
    """Rows whose trailing fields are all missing: a cut-off file or a short line."""
    if raw.width < 3:
        return []
    last = raw.columns[-1]
    short = raw.select(pl.sum_horizontal(pl.all().is_null()) > 2).to_series() & raw[last].is_null()
    if not short.any():
        return []
    first_missing = next(c for c in raw.columns if raw.filter(short)[c].is_null().all())
    return [
        Problem(
            name(first_missing), "complete row (file truncated or line cut short)", rows_of(short)
        )
    ]


def rule_check(name: str, expression: str, description: str) -> pa.Check:
    """A declared row rule (a SQL expression over contract columns) as a pandera check;
    a NULL result fails, as in SQL data tests."""
    return pa.Check(
        lambda data: data.lazyframe.select(pl.sql_expr(expression).fill_null(False)),
        name=name,
        error=f"{name} ({description or expression})",
    )
