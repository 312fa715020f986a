"""The online feature store: the newest feature row of every customer, in Redis.

Key layout (``{ds}`` a dataset name, ``{v}`` a snapshot version, an integer per dataset):

* ``churn:{ds}:current``: the version readers use (a plain string).
* ``churn:{ds}:v:{v}:meta``: hash describing the snapshot (as-of date, feature-set and model
  versions, column schema, row count, write time).
* ``churn:{ds}:v:{v}:c:{customer_id}``: one hash per customer with fields ``n`` (numeric
  features), ``s`` (string features), ``as_of``, ``fsv`` (feature-set version) and ``mv``
  (model/registry version that wrote it).
* ``churn:{ds}:seq`` (version counter) and ``churn:{ds}:versions`` (sorted set of every version
  written, so superseded and abandoned ones can be found and expired).

**Atomic publication.** A snapshot is written entirely under a fresh version prefix, then the
pointer flips with one command (a compare-and-set script, so a slow writer can never move the
pointer back to an older snapshot). Superseded versions get an ``EXPIRE`` (grace period), not a
``DEL``: a reader that resolved the pointer just before the flip still finds every key it asks
for. Readers resolve the pointer once and fetch all customers in one pipeline, so a response
never mixes two snapshots.

**Encoding.** Numeric columns (ints, floats, booleans) of a row are packed as one little-endian
numpy record (native width per column plus a validity byte per column), so floats round-trip
bit for bit (NaN payloads and -0.0 included), nulls stay distinct from NaN, and a whole batch
decodes with one ``np.frombuffer`` over the concatenated replies instead of per-field parsing:
the scoring service turns that straight into its float matrix. String columns go in one JSON
object per row (exact for any Unicode). Requires Redis >= 7 (``EXPIRE ... NX``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from redis.typing import EncodableT, FieldT

AS_OF_COLUMN = "as_of"
"""Name of the as-of date column in the frames :func:`read_rows` returns."""

DEFAULT_GRACE_SECONDS = 600
ENCODING = "record-v1"
ROW_FIELDS = ("n", "s", "as_of")
_DATASET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_NUMERIC_DTYPES: dict[str, tuple[pl.DataType, str]] = {
    str(dtype): (dtype, numpy_code)
    for dtype, numpy_code in (
        (pl.Float64(), "<f8"),
        (pl.Float32(), "<f4"),
        (pl.Int64(), "<i8"),
        (pl.Int32(), "<i4"),
        (pl.Int16(), "<i2"),
        (pl.Int8(), "i1"),
        (pl.UInt64(), "<u8"),
        (pl.UInt32(), "<u4"),
        (pl.UInt16(), "<u2"),
        (pl.UInt8(), "u1"),
        (pl.Boolean(), "?"),
    )
}
_STRING_DTYPES = (pl.String, pl.Categorical, pl.Enum)

# Flip the pointer only forward: a writer that finishes after a newer one must not win.
_FLIP_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""


class SnapshotNotFound(LookupError):
    """The dataset has no published snapshot (nothing was ever written, or it was flushed)."""

    @classmethod
    def of(cls, dataset: str) -> SnapshotNotFound:
        return cls(f"the online store holds no snapshot for dataset {dataset!r}")


class SnapshotCorrupt(ValueError):
    """Stored bytes do not match the snapshot's own schema (written by something else)."""


class FeatureMismatch(LookupError):
    """The snapshot lacks a requested feature, or stores it with the wrong kind."""


class StaleSnapshotError(RuntimeError):
    """A newer snapshot was published while this one was being written; this one was dropped."""


def _text(value: Any) -> str:
    """Redis replies are bytes (binary-safe client); keys and meta fields are UTF-8 text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def pointer_key(dataset: str) -> str:
    return f"churn:{dataset}:current"


def version_prefix(dataset: str, version: str) -> str:
    return f"churn:{dataset}:v:{version}:"


def meta_key(dataset: str, version: str) -> str:
    return f"{version_prefix(dataset, version)}meta"


def row_key(dataset: str, version: str, customer_id: str) -> str:
    return f"{version_prefix(dataset, version)}c:{customer_id}"


def _seq_key(dataset: str) -> str:
    return f"churn:{dataset}:seq"


def _versions_key(dataset: str) -> str:
    return f"churn:{dataset}:versions"


@dataclass(frozen=True)
class Column:
    """One stored feature column: ``kind`` is ``num`` (packed record) or ``str`` (JSON)."""

    name: str
    dtype: str
    kind: str


@dataclass(frozen=True, eq=False)
class Schema:
    """The stored columns of a snapshot and the packed record layout derived from them.

    Readers parse the meta hash on every request; :meth:`from_json` returns the same object
    for the same text, so the derived layout is computed once per snapshot, not per request.
    """

    columns: tuple[Column, ...]

    @cached_property
    def numeric_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == "num")

    @cached_property
    def string_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == "str")

    @cached_property
    def feature_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @cached_property
    def numeric_index(self) -> dict[str, int]:
        """Position of each numeric column in the packed record."""
        return {c.name: i for i, c in enumerate(self.numeric_columns)}

    @cached_property
    def record_dtype(self) -> np.dtype[Any]:
        """The packed layout of ``n``: one field per numeric column, then validity bytes."""
        fields: list[Any] = [
            (f"c{i}", _NUMERIC_DTYPES[c.dtype][1]) for i, c in enumerate(self.numeric_columns)
        ]
        fields.append(("valid", "u1", (len(self.numeric_columns),)))
        return np.dtype(fields)

    def to_json(self) -> str:
        return json.dumps([[c.name, c.dtype, c.kind] for c in self.columns])

    @staticmethod
    @lru_cache(maxsize=64)
    def from_json(text: str) -> Schema:
        return Schema(tuple(Column(*c) for c in json.loads(text)))


@dataclass(frozen=True)
class SnapshotMeta:
    """What a published snapshot holds and who wrote it (the ``...:meta`` hash)."""

    dataset: str
    version: str
    entity: str
    as_of: date
    as_of_column: str | None
    feature_set_version: str
    model_version: str
    rows: int
    written_at: datetime
    schema: Schema

    @property
    def feature_names(self) -> list[str]:
        return self.schema.feature_names

    def to_hash(self) -> dict[FieldT, EncodableT]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "entity": self.entity,
            "as_of": self.as_of.isoformat(),
            "as_of_column": self.as_of_column or "",
            "feature_set_version": self.feature_set_version,
            "model_version": self.model_version,
            "rows": str(self.rows),
            "written_at": self.written_at.isoformat(),
            "columns": self.schema.to_json(),
            "encoding": ENCODING,
        }

    @classmethod
    def from_hash(cls, raw: Mapping[Any, Any]) -> SnapshotMeta:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if fields.get("encoding") != ENCODING:
            raise SnapshotCorrupt(f"unsupported online-store encoding {fields.get('encoding')!r}")
        return cls(
            dataset=fields["dataset"],
            version=fields["version"],
            entity=fields["entity"],
            as_of=date.fromisoformat(fields["as_of"]),
            as_of_column=fields["as_of_column"] or None,
            feature_set_version=fields["feature_set_version"],
            model_version=fields["model_version"],
            rows=int(fields["rows"]),
            written_at=datetime.fromisoformat(fields["written_at"]),
            schema=Schema.from_json(fields["columns"]),
        )


@dataclass(frozen=True)
class WriteResult:
    rows: int
    seconds: float
    version: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class Mismatch:
    """A stored value that differs from the source frame (or a customer that is missing)."""

    customer_id: str
    column: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.customer_id}.{self.column}: expected {self.expected!r}, got {self.actual!r}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _check_dataset(dataset: str) -> None:
    if not _DATASET_NAME.match(dataset):
        raise ValueError(f"dataset name {dataset!r} must match {_DATASET_NAME.pattern}")


def _check_binary_client(client: Any) -> None:
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the online store needs a Redis client with decode_responses=False")


def _newest_rows(frame: pl.DataFrame, entity: str, as_of: date | str) -> pl.DataFrame:
    """One row per customer: the newest by the as-of column, or the frame as given."""
    keys = [entity, as_of] if isinstance(as_of, str) else [entity]
    duplicated = frame.filter(frame.select(keys).is_duplicated())
    if len(duplicated):
        raise ValueError(
            f"{len(duplicated)} rows share a {keys} key, e.g. "
            f"{duplicated.head(3).select(keys).rows()}"
        )
    if isinstance(as_of, str):
        frame = frame.sort(as_of).unique(subset=entity, keep="last", maintain_order=True)
    return frame


def _schema(frame: pl.DataFrame, features: Sequence[str]) -> Schema:
    columns = []
    for name in features:
        dtype = frame.schema[name]
        if str(dtype) in _NUMERIC_DTYPES:
            columns.append(Column(name, str(dtype), "num"))
        elif isinstance(dtype, _STRING_DTYPES):
            columns.append(Column(name, str(dtype), "str"))
        else:
            raise TypeError(
                f"feature {name!r} has type {dtype}: only numbers and strings are stored"
            )
    return Schema(tuple(columns))


def _encode_numeric(frame: pl.DataFrame, meta: SnapshotMeta) -> list[bytes]:
    """Every row's numeric features as one packed record (see the module docstring)."""
    numeric = meta.schema.numeric_columns
    records = np.zeros(len(frame), dtype=meta.schema.record_dtype)
    for i, column in enumerate(numeric):
        series = frame[column.name]
        records[f"c{i}"] = series.fill_null(False if series.dtype == pl.Boolean else 0).to_numpy()
        records["valid"][:, i] = series.is_not_null().to_numpy()
    buffer = records.tobytes()
    size = records.dtype.itemsize
    return [buffer[i * size : (i + 1) * size] for i in range(len(frame))]


def _encode_strings(frame: pl.DataFrame, meta: SnapshotMeta) -> list[str] | None:
    names = [c.name for c in meta.schema.string_columns]
    if not names:
        return None
    return (
        frame.select(pl.struct([pl.col(n).cast(pl.String) for n in names]).struct.json_encode())
        .to_series()
        .to_list()
    )


def write_snapshot(
    redis: redis.Redis,
    dataset: str,
    frame: pl.DataFrame,
    *,
    entity: str = "customer_id",
    as_of: date | str,
    feature_set_version: str,
    model_version: str,
    ttl_seconds: int = DEFAULT_GRACE_SECONDS,
    features: Sequence[str] | None = None,
    chunk_rows: int = 2000,
) -> WriteResult:
    """Publish the newest feature row of every customer as a new version, atomically.

    ``as_of`` is either the observation date of the whole frame (one row per customer), or
    the name of a date column: then each customer's newest row is kept and carries its own
    date. ``features`` defaults to every column but the entity and the as-of column.
    ``ttl_seconds`` is the grace period superseded versions survive after the flip, so
    requests that resolved the old pointer still finish on a complete snapshot. Raises
    :class:`StaleSnapshotError` if a newer version was published meanwhile.
    """
    _check_dataset(dataset)
    _check_binary_client(redis)
    started = time.perf_counter()
    frame = _newest_rows(frame, entity, as_of)
    if frame.is_empty():
        raise ValueError(f"refusing to publish an empty snapshot for {dataset!r}")
    if frame[entity].null_count():
        raise ValueError(f"{frame[entity].null_count()} rows have a null {entity!r}")
    as_of_column = as_of if isinstance(as_of, str) else None
    excluded = {entity, as_of_column}
    feature_names = list(features or [c for c in frame.columns if c not in excluded])
    as_of_dates = (
        frame[as_of].cast(pl.Date)
        if isinstance(as_of, str)
        else pl.repeat(as_of, len(frame), eager=True)
    )
    version = str(redis.incr(_seq_key(dataset)))
    redis.zadd(_versions_key(dataset), {version: int(version)})
    meta = SnapshotMeta(
        dataset=dataset,
        version=version,
        entity=entity,
        as_of=as_of_dates.max(),  # type: ignore[arg-type]
        as_of_column=as_of_column,
        feature_set_version=feature_set_version,
        model_version=model_version,
        rows=len(frame),
        written_at=datetime.now(UTC),
        schema=_schema(frame, feature_names),
    )
    ids = frame[entity].cast(pl.String).to_list()
    numeric = _encode_numeric(frame, meta)
    strings = _encode_strings(frame, meta)
    dates = as_of_dates.dt.to_string("%Y-%m-%d").to_list()
    for start in range(0, len(ids), chunk_rows):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(start + chunk_rows, len(ids))):
            fields: dict[FieldT, EncodableT] = {
                "n": numeric[i],
                "as_of": dates[i],
                "fsv": feature_set_version,
                "mv": model_version,
            }
            if strings is not None:
                fields["s"] = strings[i]
            pipe.hset(row_key(dataset, version, ids[i]), mapping=fields)
        pipe.execute()
    redis.hset(meta_key(dataset, version), mapping=meta.to_hash())
    current = _text(redis.eval(_FLIP_SCRIPT, 1, pointer_key(dataset), version))
    if current != version:
        _expire_versions(redis, dataset, {version}, ttl_seconds)
        raise StaleSnapshotError(
            f"{dataset}: version {current} was published while {version} was written"
        )
    superseded = {
        _text(v) for v in redis.zrangebyscore(_versions_key(dataset), "-inf", int(version) - 1)
    }
    _expire_versions(redis, dataset, superseded, ttl_seconds)
    return WriteResult(rows=len(frame), seconds=time.perf_counter() - started, version=version)


def stage_rows(pipe: Any, meta: SnapshotMeta, frame: pl.DataFrame, as_of: Sequence[str]) -> None:
    """Queue on ``pipe`` the rows of ``frame`` (the entity and every feature of the snapshot,
    one row per customer) into the published snapshot ``meta``, with their as-of dates.

    The stream worker replaces, in place, the rows of the customers whose features it just
    derived from new events, so the API scores them as the stream does; the pipeline is the
    caller's, so the rows land in the same transaction as the rest of its batch.
    """
    ids = frame[meta.entity].cast(pl.String).to_list()
    numeric = _encode_numeric(frame, meta)
    strings = _encode_strings(frame, meta)
    for i, customer_id in enumerate(ids):
        fields: dict[FieldT, EncodableT] = {"n": numeric[i], "as_of": as_of[i]}
        if strings is not None:
            fields["s"] = strings[i]
        pipe.hset(row_key(meta.dataset, meta.version, customer_id), mapping=fields)


def _expire_versions(
    redis: redis.Redis, dataset: str, versions: set[str], ttl_seconds: int
) -> None:
    """Give every key of ``versions`` a TTL (``NX``: a grace period already running is kept)."""
    if not versions:
        return
    pipe = redis.pipeline(transaction=False)
    for key in redis.scan_iter(match=f"churn:{dataset}:v:*", count=1000):
        if _text(key).split(":", 4)[3] in versions:
            pipe.expire(key, ttl_seconds, nx=True)
            if len(pipe) >= 5000:
                pipe.execute()
    pipe.zrem(_versions_key(dataset), *versions)
    pipe.execute()


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredRows:
    """Rows of one snapshot as read, decoded on demand.

    The scoring service takes numeric features straight from the packed records as a float
    matrix (no per-column objects on the hot path); :meth:`to_frame` gives the typed frame.
    """

    meta: SnapshotMeta
    customer_ids: list[str]
    as_of: list[str]
    records: np.ndarray
    strings: list[bytes] | None

    def __len__(self) -> int:
        return len(self.customer_ids)

    @cached_property
    def _decoded_strings(self) -> list[dict[str, str | None]]:
        return [json.loads(s) for s in self.strings or []]

    def _require(self, names: Sequence[str]) -> None:
        lacking = [name for name in names if name not in self.meta.schema.feature_names]
        if lacking:
            raise FeatureMismatch(f"snapshot {self.meta.version} lacks features {lacking}")

    def numbers(self, names: Sequence[str]) -> np.ndarray:
        """Float64 matrix of numeric columns ``names``, NaN where null (as a Float64 cast)."""
        self._require(names)
        text = [name for name in names if name not in self.meta.schema.numeric_index]
        if text:
            raise FeatureMismatch(f"snapshot {self.meta.version} stores {text} as text")
        index = [self.meta.schema.numeric_index[name] for name in names]
        out = np.empty((len(self), len(names)))
        for j, i in enumerate(index):
            out[:, j] = self.records[f"c{i}"]
        out[self.records["valid"][:, index] == 0] = np.nan
        return out

    def texts(self, names: Sequence[str]) -> np.ndarray:
        """Object matrix of columns ``names`` as text (None where null), as a String cast."""
        self._require(names)
        out = np.empty((len(self), len(names)), dtype=object)
        for j, name in enumerate(names):
            if name in self.meta.schema.numeric_index:
                out[:, j] = self.column(name).cast(pl.String).to_list()
            else:
                out[:, j] = [row[name] for row in self._decoded_strings]
        return out

    def column(self, name: str) -> pl.Series:
        """One stored column with its stored type (string-like ones as ``String``)."""
        if name in self.meta.schema.numeric_index:
            i = self.meta.schema.numeric_index[name]
            dtype = _NUMERIC_DTYPES[self.meta.schema.numeric_columns[i].dtype][0]
            series = pl.Series(name, self.records[f"c{i}"], dtype=dtype)
            nulls = np.flatnonzero(self.records["valid"][:, i] == 0)
            return series.scatter(nulls, None) if len(nulls) else series
        return pl.Series(name, [row[name] for row in self._decoded_strings], dtype=pl.String)

    def to_frame(self) -> pl.DataFrame:
        """Entity, ``as_of`` (Date), then every feature in the snapshot's column order."""
        return pl.DataFrame(
            [
                pl.Series(self.meta.entity, self.customer_ids, dtype=pl.String),
                pl.Series(AS_OF_COLUMN, self.as_of, dtype=pl.String).str.to_date("%Y-%m-%d"),
                *[self.column(name) for name in self.meta.feature_names],
            ]
        )


def _decode_rows(
    meta: SnapshotMeta, customer_ids: Sequence[str], replies: Sequence[list[bytes | None]]
) -> tuple[StoredRows, list[str]]:
    """Replies of ``HMGET n s as_of`` (one per id, in order): found rows and missing ids."""
    found = [i for i, reply in enumerate(replies) if reply[0] is not None]
    missing = [customer_ids[i] for i, reply in enumerate(replies) if reply[0] is None]
    record_dtype = meta.schema.record_dtype
    blobs = [replies[i][0] or b"" for i in found]
    if any(len(b) != record_dtype.itemsize for b in blobs):
        raise SnapshotCorrupt(
            f"{meta.dataset} v{meta.version}: a stored row does not match its schema"
        )
    rows = StoredRows(
        meta=meta,
        customer_ids=[customer_ids[i] for i in found],
        as_of=[_text(replies[i][2]) for i in found],
        records=np.frombuffer(b"".join(blobs), dtype=record_dtype),
        strings=[replies[i][1] or b"{}" for i in found] if meta.schema.string_columns else None,
    )
    return rows, missing


def _row_pipeline(pipe: Any, dataset: str, version: str, customer_ids: Sequence[str]) -> None:
    pipe.hgetall(meta_key(dataset, version))
    for customer_id in customer_ids:
        pipe.hmget(row_key(dataset, version, customer_id), ROW_FIELDS)


def _checked_meta(dataset: str, raw: Mapping[Any, Any]) -> SnapshotMeta:
    """The meta hash read with the rows; gone only if the snapshot expired mid-request."""
    if not raw:
        raise SnapshotNotFound.of(dataset)
    return SnapshotMeta.from_hash(raw)


def read_rows(
    redis: redis.Redis, dataset: str, customer_ids: Sequence[str]
) -> tuple[pl.DataFrame, list[str], SnapshotMeta]:
    """The stored rows of ``customer_ids`` (found ones, in request order), the ids not in the
    store, and the snapshot they all come from. Columns: entity, ``as_of``, then the features
    with their stored types (string-like columns come back as ``String``)."""
    version = redis.get(pointer_key(dataset))
    if version is None:
        raise SnapshotNotFound.of(dataset)
    pipe = redis.pipeline(transaction=False)
    _row_pipeline(pipe, dataset, _text(version), customer_ids)
    raw_meta, *replies = pipe.execute()
    rows, missing = _decode_rows(_checked_meta(dataset, raw_meta), customer_ids, replies)
    return rows.to_frame(), missing, rows.meta


async def read_stored_async(
    redis: redis.asyncio.Redis, dataset: str, customer_ids: Sequence[str]
) -> tuple[StoredRows, list[str]]:
    """:func:`read_rows` for an asyncio client (the scoring service), same two round trips,
    rows left in their stored encoding (see :class:`StoredRows`)."""
    version = await redis.get(pointer_key(dataset))
    if version is None:
        raise SnapshotNotFound.of(dataset)
    pipe = redis.pipeline(transaction=False)
    _row_pipeline(pipe, dataset, _text(version), customer_ids)
    raw_meta, *replies = await pipe.execute()
    return _decode_rows(_checked_meta(dataset, raw_meta), customer_ids, replies)


def current_meta(redis: redis.Redis, dataset: str) -> SnapshotMeta | None:
    """The snapshot readers currently get, or ``None`` if none was published."""
    version = redis.get(pointer_key(dataset))
    if version is None:
        return None
    raw = redis.hgetall(meta_key(dataset, _text(version)))
    return SnapshotMeta.from_hash(raw) if raw else None


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def _same_values(expected: pl.Series, actual: pl.Series) -> np.ndarray:
    """Element-wise equality with nulls equal to nulls and floats compared bit for bit."""
    same_null = (expected.is_null() == actual.is_null()).to_numpy()
    if expected.dtype.is_float():
        bits = np.uint64 if expected.dtype == pl.Float64 else np.uint32
        e = expected.fill_null(0).to_numpy().view(bits)
        a = actual.cast(expected.dtype).fill_null(0).to_numpy().view(bits)
        return same_null & (e == a)
    if isinstance(expected.dtype, _STRING_DTYPES):
        expected = expected.cast(pl.String)
    values = (expected == actual.cast(expected.dtype)).fill_null(True).to_numpy()
    return same_null & values


def sample_equals(
    redis: redis.Redis, dataset: str, frame: pl.DataFrame, n: int, seed: int
) -> list[Mismatch]:
    """Compare ``n`` random customers of ``frame`` (what was written) with the live snapshot.

    The frame is reduced to one row per customer the same way :func:`write_snapshot` did;
    every stored column and the as-of date are compared exactly. An empty list means the
    sample matches; a missing snapshot is reported as one mismatch.
    """
    meta = current_meta(redis, dataset)
    if meta is None:
        return [Mismatch("*", "*", "a published snapshot", None)]
    source = _newest_rows(frame, meta.entity, meta.as_of_column or meta.as_of)
    sample = source.sample(n=min(n, len(source)), seed=seed).with_columns(
        pl.col(meta.entity).cast(pl.String)
    )
    ids = sample[meta.entity].to_list()
    rows, missing, read_meta = read_rows(redis, dataset, ids)
    mismatches = [Mismatch(cid, "*", "a stored row", None) for cid in missing]
    if read_meta.version != meta.version:
        mismatches.append(Mismatch("*", "version", meta.version, read_meta.version))
    expected = sample.filter(pl.col(meta.entity).is_in(rows[meta.entity].implode()))
    expected = expected.with_columns(
        (
            pl.col(meta.as_of_column).cast(pl.Date) if meta.as_of_column else pl.lit(meta.as_of)
        ).alias(AS_OF_COLUMN)
    )
    aligned = expected.join(rows, on=meta.entity, how="left", suffix="__stored")
    for name in [AS_OF_COLUMN, *meta.feature_names]:
        same = _same_values(aligned[name], aligned[f"{name}__stored"])
        for i in np.flatnonzero(~same):
            mismatches.append(
                Mismatch(
                    aligned[meta.entity][int(i)],
                    name,
                    aligned[name][int(i)],
                    aligned[f"{name}__stored"][int(i)],
                )
            )
    return mismatches
