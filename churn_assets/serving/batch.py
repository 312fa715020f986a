"""Batch scoring: input from an upload or the offline store, output streamed as parquet or CSV.

Input is read and checked completely before the response starts, so every problem (bad
file, missing column, wrong type, no rows) is a clean 4xx; only then is the output scored
and encoded chunk by chunk, so a large month never exists twice in memory as output.
Output columns are those of ``<ds>_monitoring.scores``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from churn_assets.lib.file_lock import file_lock
from churn_assets.serving.models import ServedModel
from churn_assets.serving.scoring import N_REASONS, FeatureRows, FeatureTypeError

ENTITY = "customer_id"
TIME_COLUMN = "observation_date"
OutputFormat = Literal["parquet", "csv"]
MEDIA_TYPES: dict[OutputFormat, str] = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv",
}


class BatchInputError(ValueError):
    """The input cannot be scored; ``field`` names the culprit for the 422 answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class OfflineStoreUnavailable(RuntimeError):
    """The DuckDB file, the table or its lock is not available right now (503)."""


class NoRowsForDate(LookupError):
    """The offline table has no row for the requested observation date (404)."""


def output_format(requested: str | None, accept: str | None) -> OutputFormat:
    """``format`` wins; otherwise the Accept header; parquet by default."""
    if requested in MEDIA_TYPES:
        return requested  # type: ignore[return-value]
    return "csv" if "text/csv" in (accept or "") else "parquet"


def read_upload(data: bytes, model: ServedModel) -> pl.DataFrame:
    """A parquet (by its magic bytes) or CSV upload; ids and categoricals read as text."""
    text_columns = {ENTITY: pl.String, **{c: pl.String for c in model.scorer.categorical}}
    try:
        if data[:4] == b"PAR1":
            return pl.read_parquet(io.BytesIO(data))
        return pl.read_csv(
            io.BytesIO(data),
            schema_overrides=text_columns,
            infer_schema_length=10_000,
            try_parse_dates=True,
        )
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise BatchInputError("file", f"not a readable parquet or CSV file: {exc}") from exc


class OfflineStore:
    """Read-only access to the DuckDB feature tables, one month at a time.

    The file is attached only for the duration of a read, under the shared file lock that
    Dagster's writers take exclusively, so the service never keeps a writer out and a build in
    progress is waited for instead of failing on DuckDB's own lock. Attaching to a resident
    in-memory database costs about half of opening a new connection to the file each time;
    reads are serialized because the attachment is shared.
    """

    ALIAS = "offline"

    def __init__(self, path: Path, lock_timeout_seconds: float) -> None:
        self.path = path
        self.lock_timeout_seconds = lock_timeout_seconds
        self._memory = duckdb.connect()
        self._lock = threading.Lock()

    def read_month(self, table: str, observation_date: date) -> pl.DataFrame:
        """Every row of ``table`` at ``observation_date`` (blocking: call from a thread)."""
        if not self.path.exists():
            raise OfflineStoreUnavailable(f"the offline store {self.path} does not exist")
        quoted = str(self.path).replace("'", "''")
        try:
            with (
                self._lock,
                file_lock(self.path, exclusive=False, timeout_seconds=self.lock_timeout_seconds),
            ):
                self._memory.execute(f"ATTACH '{quoted}' AS {self.ALIAS} (READ_ONLY)")
                try:
                    frame = self._memory.sql(
                        f"SELECT * FROM {self.ALIAS}.{table} WHERE {TIME_COLUMN} = ?",
                        params=[observation_date],
                    ).pl()
                finally:
                    self._memory.execute(f"DETACH {self.ALIAS}")
        except TimeoutError as exc:
            raise OfflineStoreUnavailable(f"the offline store is busy: {exc}") from exc
        except duckdb.CatalogException as exc:
            raise OfflineStoreUnavailable(f"the offline store has no table {table}") from exc
        except duckdb.IOException as exc:
            raise OfflineStoreUnavailable(f"the offline store cannot be opened: {exc}") from exc
        if frame.is_empty():
            raise NoRowsForDate(f"{table} has no rows for {TIME_COLUMN} {observation_date}")
        return frame

    def close(self) -> None:
        self._memory.close()


@dataclass(frozen=True)
class BatchInput:
    """Checked input: ids, dates (if given) and the model's features."""

    customer_ids: pl.Series
    observation_dates: pl.Series
    rows: FeatureRows

    @classmethod
    def from_frame(cls, frame: pl.DataFrame, model: ServedModel) -> BatchInput:
        if frame.is_empty():
            raise BatchInputError("file", "the input has no rows")
        missing = [c for c in (ENTITY, *model.scorer.features) if c not in frame.columns]
        if missing:
            raise BatchInputError(missing[0], f"missing columns: {missing}")
        try:
            dates = (
                frame[TIME_COLUMN].cast(pl.Date)
                if TIME_COLUMN in frame.columns
                else pl.Series(TIME_COLUMN, [None] * len(frame), dtype=pl.Date)
            )
        except pl.exceptions.PolarsError as exc:
            raise BatchInputError(TIME_COLUMN, f"{TIME_COLUMN} is not a date") from exc
        try:
            rows = FeatureRows.from_frame(frame, model.scorer.numeric, model.scorer.categorical)
        except FeatureTypeError as exc:
            raise BatchInputError(exc.column, str(exc)) from exc
        return cls(frame[ENTITY].cast(pl.String), dates.alias(TIME_COLUMN), rows)


def scores_frame(
    model: ServedModel, batch: BatchInput, start: int, stop: int, *, reasons: bool
) -> pl.DataFrame:
    """Rows ``start:stop`` scored, in the ``<ds>_monitoring.scores`` layout."""
    rows = batch.rows.slice(start, stop)
    scores = model.scorer.score(rows, reasons=reasons)
    columns: dict[str, Any] = {
        TIME_COLUMN: batch.observation_dates[start:stop],
        ENTITY: batch.customer_ids[start:stop],
        "churn_probability": scores.probability,
        "risk_decile": scores.decile.astype(np.int32),
    }
    if scores.contributions is not None:
        features = np.asarray(model.scorer.features, dtype=object)
        top = scores.top_reasons()
        picked = np.take_along_axis(scores.contributions, top, axis=1)
        for rank in range(min(N_REASONS, top.shape[1])):
            columns[f"driver_{rank + 1}"] = pl.Series(features[top[:, rank]], dtype=pl.String)
            columns[f"driver_{rank + 1}_value"] = pl.Series(
                rows.texts(top[:, rank]), dtype=pl.String
            )
            columns[f"driver_{rank + 1}_shap"] = picked[:, rank]
    frame = pl.DataFrame(columns)
    return frame.with_columns(
        model_name=pl.lit(model.name),
        model_version=pl.lit(model.version),
        scored_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)),
    )


class _Sink(io.RawIOBase):
    """A write-only file that hands out what was written since the last ``drain``."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def stream_scores(
    model: ServedModel, batch: BatchInput, fmt: OutputFormat, *, reasons: bool, chunk_rows: int
) -> Iterator[bytes]:
    """Score and encode ``chunk_rows`` at a time: one CSV block or parquet row group each."""
    n = len(batch.rows)
    if fmt == "csv":
        for start in range(0, n, chunk_rows):
            frame = scores_frame(model, batch, start, start + chunk_rows, reasons=reasons)
            yield frame.write_csv(include_header=start == 0).encode()
        return
    sink = _Sink()
    first = scores_frame(model, batch, 0, chunk_rows, reasons=reasons).to_arrow()
    writer = pq.ParquetWriter(sink, first.schema)
    writer.write_table(first)
    yield sink.drain()
    for start in range(chunk_rows, n, chunk_rows):
        writer.write_table(
            scores_frame(model, batch, start, start + chunk_rows, reasons=reasons).to_arrow()
        )
        yield sink.drain()
    writer.close()
    yield sink.drain()
