"""Reading a user's file: CSV as text (every value parsed by the contract, so a bad value is
reported with its row), parquet with its own types. An unreadable file, or a column Polars
cannot decode, becomes a :class:`ContractViolation` naming the file and the column."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from churn_assets.lib.contracts.problems import ContractViolation
from churn_assets.lib.datasets import FileFormat


def read_table(path: Path, file_format: FileFormat) -> pl.DataFrame:
    source = str(path)
    if not path.exists():
        raise ContractViolation(source, ["file not found"])
    if file_format == "csv":
        try:
            return pl.read_csv(path, infer_schema=False, encoding="utf8")
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
            raise ContractViolation(source, [_unreadable("CSV", exc)]) from exc
    try:
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise ContractViolation(source, [_unreadable("parquet", exc, _bad_column(path))]) from exc


def _bad_column(path: Path) -> str | None:
    """The first column that fails to decode on its own (e.g. bytes that are not UTF-8)."""
    try:
        names = pq.read_schema(path).names
    except (OSError, ValueError):
        return None
    for name in names:
        try:
            pl.read_parquet(path, columns=[name])
        except (pl.exceptions.PolarsError, OSError, ValueError):
            return name
    return None


def _unreadable(kind: str, exc: BaseException, column: str | None = None) -> str:
    where = f" in column '{column}'" if column else ""
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unreadable {kind}{where} ({exc.__class__.__name__}: {first_line[:200]})"
