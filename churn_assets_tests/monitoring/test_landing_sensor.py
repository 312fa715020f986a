"""The landing sensor on real replayed files: quarantine with a reason, idempotency, no runs."""

from __future__ import annotations

import hashlib
from datetime import date

import dagster as dg
import duckdb
import polars as pl
import pytest

from churn_assets import replay
from churn_assets.defs.monitoring import sensors
from churn_assets.resources import AlertNotifier
from churn_assets.settings import Settings


def _tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"notifier": AlertNotifier()}
    )
    result = sensors.retail_landing_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def _table_digest(settings: Settings) -> str:
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        rows = con.sql("SELECT * FROM raw.retail_transactions ORDER BY ALL").fetchall()
    finally:
        con.close()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.fixture
def raw_table(churn_home: Settings) -> Settings:
    """A tiny stand-in raw table, to prove a quarantined file changes no table."""
    con = duckdb.connect(str(churn_home.duckdb_path))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.retail_transactions AS SELECT 1 AS event_id, 'x' AS invoice")
    con.close()
    return churn_home


def test_bad_file_is_quarantined_with_reason_and_launches_nothing(raw_table: Settings) -> None:
    settings = raw_table
    before = _table_digest(settings)
    replay.start(settings, date(2011, 1, 1))
    landed = replay.next_month(settings)
    assert landed is not None
    good = pl.read_parquet(landed)
    broken = good.with_columns(
        pl.when(pl.int_range(pl.len()) == 2)
        .then(None)
        .otherwise(pl.col("invoice_ts"))
        .alias("invoice_ts")
    )
    broken.write_parquet(landed)
    garbage = settings.landing_dir / "retail_events_garbage.parquet"
    garbage.write_bytes(b"not a parquet file")
    overlap = settings.landing_dir / "retail_events_2010-12.parquet"  # valid, but before as-of
    pl.read_parquet(settings.retail_parquet).filter(
        pl.col("invoice_ts").dt.strftime("%Y-%m") == "2010-12"
    ).head(50).write_parquet(overlap)

    with dg.instance_for_test() as instance:
        first = _tick(instance, None)
        second = _tick(instance, first.cursor)

    assert [r.run_key for r in first.run_requests or []] == [
        f"replay-session:{sensors.replay_session(settings)}"
    ]  # only the as-of refresh of `replay start`, nothing for either file
    assert not second.run_requests
    reason = (settings.quarantine_dir / f"{landed.name}.reason.txt").read_text()
    assert "invoice_ts" in reason and "row" in reason and landed.name in reason
    assert (
        "unreadable parquet" in (settings.quarantine_dir / f"{garbage.name}.reason.txt").read_text()
    )
    reason_overlap = (settings.quarantine_dir / f"{overlap.name}.reason.txt").read_text()
    assert "overlaps history" in reason_overlap
    assert sorted(p.name for p in settings.quarantine_dir.glob("*.parquet")) == sorted(
        [landed.name, garbage.name, overlap.name]
    )
    assert not list(settings.accepted_dir.iterdir())
    assert not list(settings.landing_dir.glob("*.parquet"))
    assert _table_digest(settings) == before


def test_replay_commands_walk_the_real_history(churn_home: Settings) -> None:
    settings = churn_home
    with pytest.raises(ValueError, match="first day"):
        replay.start(settings, date(2011, 1, 15))
    replay.start(settings, date(2011, 10, 1))
    assert replay.read_state(settings).as_of == date(2011, 10, 1)  # type: ignore[union-attr]
    paths = [replay.next_month(settings) for _ in range(3)]
    assert [p.name for p in paths if p] == [
        "retail_events_2011-10.parquet",
        "retail_events_2011-11.parquet",
        "retail_events_2011-12.parquet",
    ]
    november = pl.read_parquet(paths[1])  # type: ignore[arg-type]
    assert november["invoice_ts"].dt.month().unique().to_list() == [11]
    archive = pl.read_parquet(settings.retail_parquet)
    expected = archive.filter(pl.col("invoice_ts").dt.strftime("%Y-%m") == "2011-11").height
    assert november.height == expected
    assert replay.next_month(settings) is None  # history exhausted after December 2011
    status = replay.status(settings)
    assert status["mode"] == "replay" and len(status["waiting_in_landing"]) == 3  # type: ignore[arg-type]
    replay.reset(settings)
    assert replay.read_state(settings) is None
    assert not list(settings.landing_dir.glob("*.parquet"))
