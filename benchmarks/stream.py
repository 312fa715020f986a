"""Benchmark and fault-run of the stream worker on the real November 2011 events (loopback only).

In one bounded run, against a project-local Redis and a batch store built from the bundled data
by the real contract and dbt models (a small XGBoost champion registered from it):

1. **sustained throughput**: all of November (84,711 entries) is published, then worker
   processes (``python -m churn_assets.streaming``) drain it; events/s is measured from the
   first acknowledged entry to the last, through one worker and through two;
2. **end-to-end lag** at a fixed 1,000 events/s (open loop): from ``XADD`` on the events
   stream to ``XADD`` of the score entry that covers the event, both read from the Redis entry
   ids (the server's clock, millisecond resolution), p50 and p99 over every scored event;
3. **parity with faults** (``--parity`` runs only this): all of November from the batch state
   at 2011-11-01 through two consumers SIGKILLed at random points (five kills), then every
   customer's online features and latest score as of 2011-12-01 against the batch.

Workers run with one thread (``OMP_NUM_THREADS=1``). Examples::

    .venv/bin/python -m benchmarks.stream            # make bench-stream
    .venv/bin/python -m benchmarks.stream --parity   # make parity-stream
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb
import numpy as np

from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.events import encode
from churn_assets.streaming.bootstrap import bootstrap
from churn_assets.streaming.producer import publish
from churn_assets.streaming.worker import risk_key
from churn_assets_tests.redis_server import RedisServer, running_redis
from churn_assets_tests.streaming import real_data

TARGET_EVENTS_PER_SECOND = 5000.0
TARGET_P99_MS = 100.0
LAG_RATE = 1000.0
LAG_EVENTS = 15_000
MONTH = date(2011, 11, 1)
KILLS = 5
TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class Setup:
    spec: DatasetSpec
    root: Path
    duckdb_path: Path
    server: RedisServer
    env: dict[str, str]

    @property
    def client(self) -> Any:
        return self.server.client()


@contextmanager
def setup(root: Path) -> Iterator[Setup]:
    spec = load_declarations()["retail"]
    started = time.perf_counter()
    duckdb_path = real_data.build_batch(spec, root)
    mlflow, version = real_data.register_champion_from_batch(spec, duckdb_path, root, root)
    print(f"batch store and champion v{version} built in {time.perf_counter() - started:.0f} s")
    with running_redis(root / "redis") as server:
        env = {
            "CHURN_HOME": str(root),
            "CHURN_REDIS_URL": server.url,
            "CHURN_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
            "CHURN_DUCKDB_PATH": str(duckdb_path),
            "CHURN_STREAM_CLAIM_IDLE_MS": "2000",
            "OMP_NUM_THREADS": "1",
        }
        yield Setup(spec, root, duckdb_path, server, env)


def november(s: Setup, limit: int | None = None) -> list[dict[str, str]]:
    """The month's canonical events in event-time order, as stream entries."""
    with duckdb.connect(str(s.duckdb_path), read_only=True) as con:
        frame = con.sql(
            f"SELECT * FROM {s.spec.db_schema('raw')}.events WHERE event_ts >= ? AND "
            "event_ts < ? ORDER BY event_ts",
            params=[MONTH, real_data.PARITY_DATE],
        ).pl()
    rows = frame.head(limit) if limit else frame
    return [encode(r) for r in rows.iter_rows(named=True)]


def reset(s: Setup) -> None:
    """Empty streams and counters, and the online state back at the start of the month."""
    dataset = s.spec.name
    s.client.delete(
        store.events_key(dataset),
        store.scores_key(dataset),
        store.dead_key(dataset),
        store.stats_key(dataset),
        store.consumers_key(dataset),
        risk_key(dataset),
    )
    bootstrap(s.client, s.spec, str(s.duckdb_path), MONTH)


def wait_ready(s: Setup, names: list[str]) -> None:
    """Until every worker has loaded its model and polled the stream once (its heartbeat)."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not all(s.client.hexists(store.consumers_key(s.spec.name), n) for n in names):
        if time.monotonic() > deadline:
            raise TimeoutError("workers did not start")
        time.sleep(0.05)


def throughput(s: Setup, entries: list[dict[str, str]], consumers: int) -> float:
    """Events/s of ``consumers`` workers draining a published backlog (first to last ack)."""
    reset(s)
    publish(s.client, s.spec.name, entries)
    workers = real_data.FaultyWorkers(s.spec.name, s.env, s.root, consumers=consumers)
    workers.start_all()
    backlog = lambda: real_data.group_backlog(s.client, s.spec.name)  # noqa: E731
    try:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while (first := backlog()) >= len(entries):
            if time.monotonic() > deadline:
                raise TimeoutError("workers did not start")
            time.sleep(0.002)
        started = time.perf_counter()
        workers.wait_drained(backlog, TIMEOUT_SECONDS)
        seconds = time.perf_counter() - started
    finally:
        workers.stop()
    return first / seconds


def lag(s: Setup, entries: list[dict[str, str]]) -> tuple[float, float, int]:
    """p50 and p99 (ms) from XADD on events to XADD on scores at LAG_RATE events/s."""
    reset(s)
    workers = real_data.FaultyWorkers(s.spec.name, s.env, s.root, consumers=1)
    workers.start_all()
    try:
        s.client.xgroup_create(store.events_key(s.spec.name), store.GROUP, id="$", mkstream=True)
        wait_ready(s, list(workers.processes))
        publish(s.client, s.spec.name, entries, rate=LAG_RATE)
        workers.wait_drained(lambda: real_data.group_backlog(s.client, s.spec.name))
    finally:
        workers.stop()
    lags = []
    for score_id, fields in s.client.xrange(store.scores_key(s.spec.name)):
        scored_at = int(score_id.split(b"-")[0])
        lags += [scored_at - int(e.split(b"-")[0]) for e in fields[b"entry_ids"].split()]
    values = np.asarray(lags, dtype=float)
    return float(np.percentile(values, 50)), float(np.percentile(values, 99)), len(lags)


def parity(s: Setup) -> real_data.ParityReport:
    s.client.flushdb()
    return real_data.stream_with_faults(
        s.spec, s.duckdb_path, s.client, s.env, s.root, start=MONTH, kills=KILLS, consumers=2
    )


def print_parity(report: real_data.ParityReport) -> None:
    print("\nparity: November 2011 streamed from the batch state at 2011-11-01, as of 2011-12-01")
    for line in report.lines():
        print(f"  {line}")
    print(f"  result: {'PASS' if report.ok else 'FAIL'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stream", description=__doc__)
    parser.add_argument("--parity", action="store_true", help="only the fault-run parity")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, setup(Path(tmp)) as s:
        if args.parity:
            report = parity(s)
            print_parity(report)
            return 0 if report.ok else 1
        entries = november(s)
        one = throughput(s, entries, consumers=1)
        two = throughput(s, entries, consumers=2)
        p50, p99, scored = lag(s, entries[:LAG_EVENTS])
        load = os.getloadavg()
        print(f"\nstream worker on {len(entries):,} real events (load average {load[0]:.1f})")
        print(f"| {'measure':<44} | {'value':>12} | {'target':>12} |")
        print(f"|{'-' * 46}|{'-' * 14}|{'-' * 14}|")
        rows = [
            ("sustained events/s, one worker", f"{one:,.0f}", f">= {TARGET_EVENTS_PER_SECOND:,.0f}"),
            ("sustained events/s, two workers", f"{two:,.0f}", f">= {TARGET_EVENTS_PER_SECOND:,.0f}"),
            (f"event -> score p50 at {LAG_RATE:,.0f}/s ({scored:,} events)", f"{p50:.0f} ms", ""),
            (f"event -> score p99 at {LAG_RATE:,.0f}/s", f"{p99:.0f} ms", f"<= {TARGET_P99_MS:.0f} ms"),
        ]  # fmt: skip
        for name, value, target in rows:
            print(f"| {name:<44} | {value:>12} | {target:>12} |")
        report = parity(s)
        print_parity(report)
        met = min(one, two) >= TARGET_EVENTS_PER_SECOND and p99 <= TARGET_P99_MS
        return 0 if met and report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
