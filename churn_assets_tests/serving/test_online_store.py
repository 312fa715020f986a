"""The online store against a real redis-server: exact round trip, atomic flips, expiry."""

from __future__ import annotations

import math
import struct
import threading
import time
from datetime import date

import numpy as np
import polars as pl
import pytest
import redis

from churn_assets.lib import online_store
from churn_assets_tests.redis_server import RedisServer

pytestmark = pytest.mark.xdist_group("serving")

AS_OF = date(2011, 12, 1)
NAN_WITH_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]


def _write(client: redis.Redis, dataset: str, frame: pl.DataFrame, **kwargs: object) -> str:
    options: dict = {
        "as_of": AS_OF,
        "feature_set_version": "fs1",
        "model_version": "7",
        **kwargs,
    }
    return online_store.write_snapshot(client, dataset, frame, **options).version


def _awkward_frame() -> pl.DataFrame:
    """Every stored type with the values encodings usually get wrong."""
    return pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d:with:colons"],
            "f64": [NAN_WITH_PAYLOAD, -0.0, 5e-324, None],
            "f64_big": [1.7976931348623157e308, -math.inf, 0.1 + 0.2, 1 / 3],
            "f32": pl.Series([1.1, None, -0.0, 3.4e38], dtype=pl.Float32),
            "i64": pl.Series([2**63 - 1, -(2**63), None, 0], dtype=pl.Int64),
            "i8": pl.Series([-128, 127, 0, None], dtype=pl.Int8),
            "u32": pl.Series([2**32 - 1, 0, None, 7], dtype=pl.UInt32),
            "flag": [True, False, None, True],
            "text": ["Ünïcødé ✓", "", None, 'quote " and \\ backslash'],
            "cat": pl.Series(["x", "y", None, "x"], dtype=pl.Categorical),
        }
    )


def _bits(series: pl.Series) -> list[int | None]:
    width = np.uint64 if series.dtype == pl.Float64 else np.uint32
    values = series.fill_null(0).to_numpy().view(width)
    return [None if null else int(v) for v, null in zip(values, series.is_null(), strict=True)]


def test_round_trip_is_exact(redis_server: RedisServer) -> None:
    client = redis_server.client()
    frame = _awkward_frame()
    _write(client, "roundtrip", frame)
    rows, missing, meta = online_store.read_rows(
        client, "roundtrip", ["d:with:colons", "a", "nope", "b", "c"]
    )
    assert missing == ["nope"]
    assert rows["customer_id"].to_list() == ["d:with:colons", "a", "b", "c"]
    expected = frame.sort(pl.col("customer_id").replace({"d:with:colons": "0"}))
    got = rows.sort(pl.col("customer_id").replace({"d:with:colons": "0"}))
    for column in frame.columns[1:]:
        if frame[column].dtype.is_float():
            assert got[column].dtype == expected[column].dtype
            assert _bits(got[column]) == _bits(expected[column]), column
        else:
            assert got[column].to_list() == expected[column].cast(got[column].dtype).to_list()
    assert dict(zip(frame.columns[1:-1], rows.dtypes[2:-1], strict=True)) == {
        c: frame.schema[c] for c in frame.columns[1:-1]
    }
    assert rows["as_of"].to_list() == [AS_OF] * 4
    assert (meta.rows, meta.feature_set_version, meta.model_version) == (4, "fs1", "7")
    assert online_store.sample_equals(client, "roundtrip", frame, n=4, seed=0) == []


def test_each_customer_hash_names_its_snapshot(redis_server: RedisServer) -> None:
    client = redis_server.client()
    version = _write(client, "hashes", _awkward_frame(), model_version="12")
    stored = client.hgetall(online_store.row_key("hashes", version, "a"))
    assert stored[b"as_of"] == b"2011-12-01"
    assert (stored[b"fsv"], stored[b"mv"]) == (b"fs1", b"12")


def test_newest_row_per_customer_carries_its_own_date(redis_server: RedisServer) -> None:
    client = redis_server.client()
    frame = pl.DataFrame(
        {
            "customer_id": ["1", "1", "2"],
            "observation_date": [date(2011, 1, 1), date(2011, 2, 1), date(2010, 12, 1)],
            "x": [1.0, 2.0, 3.0],
        }
    )
    _write(client, "panel", frame, as_of="observation_date")
    rows, _, meta = online_store.read_rows(client, "panel", ["1", "2"])
    assert rows["x"].to_list() == [2.0, 3.0]
    assert rows["as_of"].to_list() == [date(2011, 2, 1), date(2010, 12, 1)]
    assert meta.as_of == date(2011, 2, 1)
    assert "observation_date" not in rows.columns
    assert online_store.sample_equals(client, "panel", frame, n=2, seed=1) == []


def test_sample_equals_reports_a_changed_value(redis_server: RedisServer) -> None:
    client = redis_server.client()
    frame = pl.DataFrame({"customer_id": ["1", "2"], "x": [1.0, 2.0], "c": ["u", "v"]})
    _write(client, "drifted", frame)
    changed = frame.with_columns(
        pl.when(pl.col("customer_id") == "2").then(2.5).otherwise(pl.col("x")).alias("x")
    )
    mismatches = online_store.sample_equals(client, "drifted", changed, n=2, seed=0)
    assert [(m.customer_id, m.column, m.expected, m.actual) for m in mismatches] == [
        ("2", "x", 2.5, 2.0)
    ]
    extra = pl.concat([frame, pl.DataFrame({"customer_id": ["3"], "x": [0.0], "c": ["w"]})])
    assert [m.customer_id for m in online_store.sample_equals(client, "drifted", extra, 3, 0)] == [
        "3"
    ]


def test_bad_input_is_refused(redis_server: RedisServer) -> None:
    client = redis_server.client()
    with pytest.raises(ValueError, match="share a"):
        _write(client, "bad", pl.DataFrame({"customer_id": ["1", "1"], "x": [1, 2]}))
    with pytest.raises(ValueError, match="empty"):
        _write(client, "bad", pl.DataFrame({"customer_id": [], "x": []}))
    with pytest.raises(TypeError, match="'when'"):
        _write(client, "bad", pl.DataFrame({"customer_id": ["1"], "when": [date(2020, 1, 1)]}))
    with pytest.raises(ValueError, match="dataset name"):
        _write(client, "Bad-Name", pl.DataFrame({"customer_id": ["1"], "x": [1]}))
    text_client = redis.Redis(port=redis_server.port, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        _write(text_client, "bad", pl.DataFrame({"customer_id": ["1"], "x": [1]}))
    assert online_store.current_meta(client, "bad") is None
    with pytest.raises(online_store.SnapshotNotFound, match="'bad'"):
        online_store.read_rows(client, "bad", ["1"])


def test_superseded_versions_expire_after_the_grace_period(redis_server: RedisServer) -> None:
    client = redis_server.client()
    frame = pl.DataFrame({"customer_id": ["1", "2"], "x": [1.0, 2.0]})
    first = _write(client, "expiry", frame, ttl_seconds=120)
    second = _write(client, "expiry", frame, ttl_seconds=120)
    assert client.get(online_store.pointer_key("expiry")) == second.encode()
    assert 0 < client.ttl(online_store.row_key("expiry", first, "1")) <= 120
    assert 0 < client.ttl(online_store.meta_key("expiry", first)) <= 120
    assert client.ttl(online_store.row_key("expiry", second, "1")) == -1
    third = _write(client, "expiry", frame, ttl_seconds=120)
    assert 0 < client.ttl(online_store.row_key("expiry", second, "2")) <= 120
    assert client.ttl(online_store.row_key("expiry", third, "2")) == -1


def test_a_slow_writer_never_moves_the_pointer_back(redis_server: RedisServer) -> None:
    client = redis_server.client()
    frame = pl.DataFrame({"customer_id": ["1"], "x": [1.0]})
    _write(client, "race", frame)
    # Simulate a writer that started earlier (lower version) and finishes after a newer one.
    client.set(online_store.pointer_key("race"), "99")
    client.hset(online_store.meta_key("race", "99"), mapping={"x": "y"})
    with pytest.raises(online_store.StaleSnapshotError, match="version 99"):
        _write(client, "race", frame)
    assert client.get(online_store.pointer_key("race")) == b"99"


def test_readers_during_a_rewrite_see_exactly_one_version(redis_server: RedisServer) -> None:
    client = redis_server.client()
    ids = [str(i) for i in range(3000)]

    def snapshot(value: float) -> pl.DataFrame:
        return pl.DataFrame({"customer_id": ids, "x": [value] * len(ids), "y": [value] * len(ids)})

    _write(client, "flip", snapshot(1.0))
    seen: list[tuple[str, set[float], int]] = []
    done = threading.Event()

    def read_continuously() -> None:
        reader = redis_server.client()
        while not done.is_set():
            rows, missing, meta = online_store.read_rows(reader, "flip", ids)
            seen.append(
                (meta.version, set(rows["x"].to_list() + rows["y"].to_list()), len(missing))
            )

    def reads_after(count: int) -> None:
        while len(seen) < count and thread.is_alive():
            time.sleep(0.005)

    thread = threading.Thread(target=read_continuously)
    thread.start()
    try:
        reads_after(1)
        for value in (2.0, 3.0):
            _write(client, "flip", snapshot(value), chunk_rows=100)
        reads_after(len(seen) + 2)  # at least one read that started after the last flip
    finally:
        done.set()
        thread.join()
    by_version: dict[str, set[float]] = {}
    for version, values, n_missing in seen:
        assert n_missing == 0
        assert len(values) == 1, f"a read of version {version} mixed snapshots: {values}"
        by_version.setdefault(version, set()).update(values)
    assert all(len(values) == 1 for values in by_version.values())
    ordered = [by_version[v].pop() for v in sorted(by_version, key=int)]
    assert ordered[0] == 1.0 and ordered[-1] == 3.0 and ordered == sorted(ordered)
