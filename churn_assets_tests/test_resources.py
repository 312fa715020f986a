"""The DuckDB resource makes a second process wait for the file instead of failing on its lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from churn_assets.resources import DuckDBResource

HOLD_SECONDS = 2.0

WRITER = """
import sys, time
from churn_assets.resources import DuckDBResource
resource = DuckDBResource(path=sys.argv[1])
with resource.connect() as con:
    print("locked", flush=True)
    con.execute("CREATE TABLE IF NOT EXISTS t (writer VARCHAR, written_at DOUBLE)")
    time.sleep(float(sys.argv[3]))
    con.execute("INSERT INTO t VALUES (?, ?)", [sys.argv[2], time.time()])
"""


def _start_writer(path: Path, name: str, hold: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(hold)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_second_writer_process_waits_for_the_first(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    first = _start_writer(path, "first", HOLD_SECONDS)
    assert first.stdout is not None and first.stdout.readline().strip() == "locked"
    second = _start_writer(path, "second", 0.0)
    outputs = [first.communicate(timeout=60)[0], second.communicate(timeout=60)[0]]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert not any("Could not set lock" in output for output in outputs)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql("SELECT writer FROM t ORDER BY written_at").fetchall()
    finally:
        con.close()
    assert rows == [("first",), ("second",)]


def test_reader_waits_for_a_writer_and_readers_share(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    writer = _start_writer(path, "writer", HOLD_SECONDS)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
    started = time.monotonic()
    resource = DuckDBResource(path=str(path))
    with resource.connect(read_only=True) as one, resource.connect(read_only=True) as two:
        waited = time.monotonic() - started
        assert one.sql("SELECT writer FROM t").fetchall() == [("writer",)]
        assert two.sql("SELECT count(*) FROM t").fetchall() == [(1,)]
    writer.communicate(timeout=60)
    assert writer.returncode == 0
    assert waited > HOLD_SECONDS / 2  # it queued behind the writer rather than erroring out


def test_lock_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    writer = _start_writer(path, "writer", HOLD_SECONDS)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
    impatient = DuckDBResource(path=str(path), lock_timeout_seconds=0.3)
    with pytest.raises(TimeoutError, match="stayed locked by another process"), impatient.connect():
        pass
    writer.communicate(timeout=60)
