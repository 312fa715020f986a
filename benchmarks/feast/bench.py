"""``make bench-feast``: the project's window build against Feast's point-in-time join.

Both sides get the same seeded synthetic events (benchmarks.synthetic_events) and must produce
the same windowed features for the same entity rows: every (customer, T) of the project's
feature table (a customer with a purchase before T, T = the monthly observation dates), and
the 15 additive window features (orders, lines, revenue, returns and return value over 30, 60
and 90 days before T, window [T - w, T)).

* Project: the dbt feature models as dbt compiles them (benchmarks.feature_windows), timed from
  the staging view to the finished feature table: daily tiles, then one join of the tiles to the
  observation dates. It computes all 40 features, not only the 15 compared.
* Feast has no windowed aggregation in its offline store, so it gets what a Feast user would
  write: a batch feature view over a parquet file holding, per customer, the window values on
  every day they change (the day after an event day, and the day each event leaves a window),
  stamped at that day's midnight; with no TTL a value holds until the next change, so Feast's
  as-of join returns exactly the windows at T. That file is computed here with DuckDB (timed
  and reported apart: "Feast's input"); Feast then runs ``get_historical_features(...).to_df()``
  with its default ``file`` offline store (Dask) in its own venv (benchmarks/feast/feast_side.py).

The outputs are asserted equal (integers exactly, money within 1e-6) before any figure is
printed. Examples::

    make bench-feast                                              # 10M events, ~10 minutes
    .venv/bin/python -m benchmarks.feast.bench --events 1_000_000 --customers 10_000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.feature_windows import (
    FEATURE_CHAIN,
    FEATURES,
    SPEC,
    STAGING,
    compile_models,
    observation_range,
    run_models,
    timed,
)
from benchmarks.synthetic_events import generate

FEAST_SIDE = Path(__file__).resolve().parent / "feast_side.py"
MEASURES = {  # feature prefix -> its per-day value from the day's events
    "orders": "count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase')",
    "lines": "count(*) FILTER (WHERE event_type = 'purchase')",
    "revenue": "coalesce(sum(amount) FILTER (WHERE event_type = 'purchase'), 0)",
    "returns": "count(*) FILTER (WHERE event_type <> 'purchase')",
    "return_value": "coalesce(-sum(amount) FILTER (WHERE event_type <> 'purchase'), 0)",
}
MONEY = ("revenue", "return_value")
PROJECT = "project: window build"
FEAST_INPUT = "Feast's input (DuckDB)"
FEAST_JOIN = "Feast: get_historical_features"


def window_features() -> list[str]:
    return [f"{measure}_{w}d" for w in SPEC.ev.windows for measure in MEASURES]


def feast_input_sql() -> str:
    """Per customer, the window values on every day they change (Feast's feature view)."""
    windows = SPEC.ev.windows
    shifts = ", ".join(f"({k})" for k in (1, *(w + 1 for w in windows)))
    sums = []
    for w in windows:
        for measure in MEASURES:
            kind = "DOUBLE" if measure in MONEY else "INTEGER"
            sums.append(
                f"CAST(coalesce(sum(d.{measure}) FILTER (WHERE d.event_date >= c.day - {w}), 0) "
                f"AS {kind}) AS {measure}_{w}d"
            )
    return f"""
        WITH days AS (
            SELECT customer_id, event_date,
                {", ".join(f"{sql} AS {name}" for name, sql in MEASURES.items())}
            FROM {STAGING}.stg_events
            GROUP BY customer_id, event_date
        ),
        changes AS (
            SELECT DISTINCT customer_id, event_date + shift AS day
            FROM days, (VALUES {shifts}) AS shifts(shift)
        )
        SELECT c.customer_id, CAST(c.day AS TIMESTAMP) AS event_timestamp, {", ".join(sums)}
        FROM changes AS c
        LEFT JOIN days AS d
            ON d.customer_id = c.customer_id
            AND d.event_date >= c.day - {max(windows)} AND d.event_date < c.day
        GROUP BY c.customer_id, c.day
    """


def run_feast(python: Path, work: Path) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(FEAST_SIDE), str(work)], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def assert_equal(con: duckdb.DuckDBPyConnection, feast_file: Path) -> int:
    """Feast's features equal the project's, row for row, where the project's window is known
    (a window reaching before the first day of data is NULL there, by design); return rows."""
    names = window_features()
    differs = [
        f"count(*) FILTER (WHERE p.{n} IS NOT NULL AND "
        + (
            f"abs(p.{n} - f.{n}) > 1e-6 * greatest(1, abs(p.{n})))"
            if n.startswith(MONEY)
            else f"p.{n} IS DISTINCT FROM f.{n})"
        )
        for n in names
    ]
    row = con.execute(
        f"""
        SELECT count(*), count(f.customer_id), {", ".join(differs)}
        FROM {FEATURES}.fct_features AS p
        LEFT JOIN read_parquet('{feast_file}') AS f
            ON f.customer_id = p.customer_id
            AND CAST(f.event_timestamp AS DATE) = p.observation_date
        """
    ).fetchone()
    assert row is not None
    rows, matched, *mismatches = row
    assert rows == matched, f"Feast returned {matched:,} of {rows:,} entity rows"
    bad = {n: m for n, m in zip(names, mismatches, strict=True) if m}
    assert not bad, f"Feast and the project differ: {bad}"
    return int(rows)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--observations", type=int, default=21)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--feast-python", type=Path, default=Path(".state/feast-venv/bin/python"))
    args = parser.parse_args(argv)
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="feast-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "bench.duckdb"
    db_path.unlink(missing_ok=True)
    start, end = observation_range(args.observations)

    def connect() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(db_path))
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET temp_directory = '{work / 'spill'}'")
        con.execute("SET preserve_insertion_order = false")
        return con

    print(f"events={args.events:,} customers={args.customers:,} observations {start}..{end}")
    timings: dict[str, float] = {}
    con = connect()
    generate(con, args.events, args.customers, args.seed, SPEC.db_schema("raw"))
    con.close()
    nodes = compile_models(db_path, start, end)
    con = connect()
    run_models(con, nodes, FEATURE_CHAIN[:1])
    timed(PROJECT, lambda: run_models(con, nodes, FEATURE_CHAIN), timings)
    project_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    timed(
        FEAST_INPUT,
        lambda: con.execute(f"CREATE OR REPLACE TABLE feast_windows AS {feast_input_sql()}"),
        timings,
    )
    con.execute(f"COPY feast_windows TO '{work / 'windows.parquet'}' (FORMAT parquet)")
    con.execute(
        f"COPY (SELECT customer_id, CAST(observation_date AS TIMESTAMP) AS event_timestamp "
        f"FROM {FEATURES}.fct_features) TO '{work / 'entities.parquet'}' (FORMAT parquet)"
    )
    (n_input,) = con.execute("SELECT count(*) FROM feast_windows").fetchone() or (0,)
    feast = run_feast(args.feast_python, work)
    timings[FEAST_JOIN] = feast["join_seconds"]
    print(f"  {FEAST_JOIN:<28} {feast['join_seconds']:8.2f} s", flush=True)
    rows = assert_equal(con, work / "feast_features.parquet")
    con.close()

    project, feast_input, join = timings[PROJECT], timings[FEAST_INPUT], feast["join_seconds"]
    print(
        f"\nFeast {feast['feast_version']} (file offline store) vs the project, {rows:,} entity "
        f"rows (customer, T), {len(window_features())} window features, outputs equal\n"
        "| step | seconds | peak RSS |\n|---|---:|---:|\n"
        f"| project: window build (dbt feature models, all features) | {project:.1f} | "
        f"{project_rss:,.0f} MB |\n"
        f"| Feast's input: {n_input:,} change-point rows (DuckDB) | {feast_input:.1f} | |\n"
        f"| Feast: get_historical_features | {join:.1f} | {feast['peak_rss_mb']:,.0f} MB |\n"
        f"\nFeast join / project build = {join / project:.1f}x (target >= 10x); "
        f"with Feast's input {(join + feast_input) / project:.1f}x"
    )
    timings["feast_peak_rss_mb"] = feast["peak_rss_mb"]
    timings["project_peak_rss_mb"] = project_rss
    return timings


if __name__ == "__main__":
    main()
