"""Engine parity and incremental cost on the real retail data (``make parity-spark``).

The bundled Online Retail II events go through the real contract into a DuckDB raw table once.
Each engine then builds the feature models three times, as production would see the data:

1. full build with the history known until ``--landing`` (everything before that month);
2. the landing month arrives (events before ``--landing`` + 1 month): incremental build;
3. a full rebuild of the same final data, from scratch, for comparison.

Printed: the row mismatches of the features, labels and training spine (integers exactly,
money within 0.005) between Spark and DuckDB, between each engine's incremental build and its
full rebuild, and the wall-clock time of each build. Every mismatch count must be 0.

    .venv/bin/python -m benchmarks.spark_parity               # ~10 minutes on 2 cores
    .venv/bin/python -m benchmarks.spark_parity --engines duckdb
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churn_assets.defs.features.project import run_models
from churn_assets.lib.datasets import DatasetSpec, load_declarations, observation_calendar
from churn_assets.lib.duckdb_io import qualified, replace_tables
from churn_assets.lib.engine_parity import Comparison, compare
from churn_assets.lib.ingest import assemble_events
from churn_assets.lib.months import month_after

MARTS = ("fct_features", "fct_labels", "fct_training_spine")


def load_raw(spec: DatasetSpec, db: Path, known_until: date, all_events: Path) -> None:
    """The raw table with the events before ``known_until`` (the real load cut at an as-of
    date, like a replay), from the validated full table parked in ``all_events``."""
    table = qualified(spec.db_schema("raw"), spec.raw_table)
    con = duckdb.connect(str(db))
    try:
        con.execute(f"ATTACH '{all_events}' AS source (READ_ONLY)")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {spec.db_schema('raw')}")
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM source.{table} "
            f"WHERE event_ts < DATE '{known_until}'"
        )
    finally:
        con.close()


def observation(spec: DatasetSpec, db: Path) -> tuple[date, date]:
    """The observation dates the loaded events support, as the dbt asset computes them."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            f"SELECT min(event_ts), max(event_ts) FROM {spec.db_schema('raw')}.{spec.raw_table}"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    dates, _ = observation_calendar(spec, row[0], row[1], None)
    return dates[0], dates[-1]


def compare_marts(spec: DatasetSpec, left: Path, right: Path) -> list[Comparison]:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{left}' AS l_db (READ_ONLY)")
        con.execute(f"ATTACH '{right}' AS r_db (READ_ONLY)")
        schema = spec.db_schema("features")
        return [
            compare(con, table, f"l_db.{schema}.{table}", f"r_db.{schema}.{table}")
            for table in MARTS
        ]
    finally:
        con.close()


def report(label: str, comparisons: list[Comparison]) -> int:
    mismatches = sum(c.mismatches + abs(c.left_rows - c.right_rows) for c in comparisons)
    detail = ", ".join(
        f"{c.table} {c.left_rows:,}/{c.right_rows:,} rows, {c.mismatches} mismatched, "
        f"{c.identical_rows:,} bit-identical"
        for c in comparisons
    )
    print(f"  {label}: {mismatches} mismatches ({detail})", flush=True)
    return mismatches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="retail")
    parser.add_argument("--landing", type=date.fromisoformat, default=date(2011, 11, 1))
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    spec = load_declarations()[args.dataset]
    engines = args.engines.split(",")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="spark-parity-"))
    work.mkdir(parents=True, exist_ok=True)

    began = time.perf_counter()
    all_events = work / "all_events.duckdb"
    frame, _ = assemble_events(spec, spec.source_files(), [])
    con = duckdb.connect(str(all_events))
    replace_tables(con, spec.db_schema("raw"), {spec.raw_table: frame})
    con.close()
    print(f"{spec.name}: {frame.height:,} events validated in {time.perf_counter() - began:.0f} s")
    landed = month_after(args.landing)

    timings: dict[str, float] = {}
    final: dict[str, Path] = {}
    total = 0
    for engine in engines:
        runs = {
            "full before landing": (work / f"{engine}_incremental.duckdb", args.landing),
            "incremental landing month": (work / f"{engine}_incremental.duckdb", landed),
            "full rebuild": (work / f"{engine}_full.duckdb", landed),
        }
        for label, (db, known_until) in runs.items():
            load_raw(spec, db, known_until, all_events)
            began = time.perf_counter()
            run_models(
                spec,
                db,
                observation(spec, db),
                engine=engine,
                lake=db.with_suffix(".lake"),
                target_path=work / f"target_{engine}",
            )
            timings[f"{engine}: {label}"] = time.perf_counter() - began
            print(f"  {engine:<6} {label:<27} {timings[f'{engine}: {label}']:7.1f} s", flush=True)
        incremental, full = runs["incremental landing month"][0], runs["full rebuild"][0]
        total += report(
            f"{engine} incremental vs full rebuild", compare_marts(spec, incremental, full)
        )
        final[engine] = full
    if len(final) == 2:
        total += report("spark vs duckdb (full builds)", compare_marts(spec, *final.values()))
    print(f"row mismatches: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
