"""Benchmark: tile-based window features (the dbt models) vs a naive range join vs a GROUP BY floor.

All three run in one DuckDB process on the same seeded synthetic events:

1. tiles: the project's own SQL. ``dbt compile`` renders the retail models against the benchmark
   file and the compiled statements run here in dependency order, so the benchmark measures
   exactly what dbt builds (staging view, daily tiles, purchase history, product days, as-of
   spine, feature table; labels reported separately).
2. naive: every event joined to every observation date after it, aggregated per (customer, T).
   Its output must equal the tile build (integers exactly, doubles to 1e-9 relative); asserted.
3. floor: one GROUP BY customer scan of the same events, the cost of just reading them once.

Examples::

    .venv/bin/python -m benchmarks.feature_windows                      # 1M events, < 1 min
    .venv/bin/python -m benchmarks.feature_windows --events 10_000_000 --customers 100_000
    .venv/bin/python -m benchmarks.feature_windows --events 100_000_000 --customers 1_000_000 \\
        --memory-limit 3GB --skip-naive
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

if __package__ in (None, ""):  # run as a script (`make bench`): make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.synthetic_events import generate
from churn_assets.defs.features.project import dbt_executable
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.features_dbt import (
    DBT_PROJECT_DIR,
    EVENT_FEATURE_CHAIN,
    EVENT_LABEL_CHAIN,
    dbt_vars,
    vars_arg,
)
from churn_assets.lib.features_registry import feature_set

FEATURE_CHAIN = EVENT_FEATURE_CHAIN
LABEL_CHAIN = EVENT_LABEL_CHAIN
# The bundled retail declaration (its windows, horizon, rules) under the name "bench", so the
# benchmark's tables land in bench_* schemas.
SPEC: DatasetSpec = load_declarations()["retail"].model_copy(update={"name": "bench"})
STAGING = SPEC.db_schema("staging")
FEATURES = SPEC.db_schema("features")


def observation_range(n_months: int) -> tuple[date, date]:
    """``n_months`` monthly observation dates from 2010-03-01 (the synthetic events start on
    2010-01-01 and span two years)."""
    start = date(2010, 3, 1)
    end_month = start.month - 1 + n_months - 1
    return start, date(start.year + end_month // 12, end_month % 12 + 1, 1)


def compile_models(db_path: Path, start: date, end: date) -> dict[str, Any]:
    """Compiled SQL and materialization of every event model, rendered by dbt itself."""
    target = Path(tempfile.mkdtemp(prefix="bench-target-"))
    selection = " ".join(f"+{name}" for name in (FEATURE_CHAIN[-1], *LABEL_CHAIN))
    subprocess.run(
        [
            dbt_executable(),
            "compile",
            "--quiet",
            "--target-path",
            str(target),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            *vars_arg(dbt_vars(SPEC, str(db_path), (start, end))),
            "--select",
            selection,
            "--exclude",
            "resource_type:test",
        ],
        cwd=DBT_PROJECT_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    manifest = json.loads((target / "manifest.json").read_text())
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def run_models(
    con: duckdb.DuckDBPyConnection,
    nodes: dict[str, Any],
    names: tuple[str, ...],
    per_model: dict[str, float] | None = None,
) -> None:
    """Materialize the models as dbt-duckdb would (view or table), recording each one's time."""
    for name in names:
        node = nodes[name]
        relation = f'"{node["schema"]}"."{node["alias"]}"'
        kind = "VIEW" if node["config"]["materialized"] == "view" else "TABLE"
        began = time.perf_counter()
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{node["schema"]}"')
        con.execute(f"CREATE OR REPLACE {kind} {relation} AS {node['compiled_code']}")
        if per_model is not None:
            per_model[name] = time.perf_counter() - began


def naive_sql(start: date, end: date) -> str:
    """Reference features straight from events: a range join of all history per (customer, T)."""
    windows = SPEC.ev.windows

    def in_window(w: int) -> str:
        return f"e.event_ts >= o.observation_date - INTERVAL {w} DAY"

    def known(w: int, value: str) -> str:
        """NULL where the window reaches back before the first day of the data (left-censored,
        as the feature model defines it), the value otherwise."""
        return (
            f"CASE WHEN o.observation_date - INTERVAL {w} DAY < "
            f"(SELECT first_day FROM data_start) THEN NULL ELSE {value} END"
        )

    per_window = []
    for w in windows:
        purchase = f"e.event_type = 'purchase' AND {in_window(w)}"
        other = f"e.event_type <> 'purchase' AND {in_window(w)}"
        per_window += [
            known(w, f"CAST(count(DISTINCT CASE WHEN {purchase} THEN e.order_id END) AS INTEGER)")
            + f" AS orders_{w}d",
            known(w, f"CAST(count(*) FILTER (WHERE {purchase}) AS INTEGER)") + f" AS lines_{w}d",
            known(w, f"CAST(coalesce(sum(e.amount) FILTER (WHERE {purchase}), 0) AS DOUBLE)")
            + f" AS revenue_{w}d",
            known(w, f"CAST(count(*) FILTER (WHERE {other}) AS INTEGER)") + f" AS returns_{w}d",
            known(w, f"CAST(coalesce(-sum(e.amount) FILTER (WHERE {other}), 0) AS DOUBLE)")
            + f" AS return_value_{w}d",
            known(w, f"CAST(count(DISTINCT CASE WHEN {purchase} THEN e.product_id END) AS INTEGER)")
            + f" AS distinct_products_{w}d",
        ]
    for w in SPEC.ev.long_windows:
        purchase = f"e.event_type = 'purchase' AND {in_window(w)}"
        per_window += [
            known(w, f"CAST(count(DISTINCT CASE WHEN {purchase} THEN e.order_id END) AS INTEGER)")
            + f" AS orders_{w}d",
            known(w, f"CAST(coalesce(sum(e.amount) FILTER (WHERE {purchase}), 0) AS DOUBLE)")
            + f" AS revenue_{w}d",
        ]
    year = f"e.event_type = 'purchase' AND {in_window(365)}"
    per_window += [
        known(
            365,
            f"CAST(count(DISTINCT CASE WHEN {year} THEN date_trunc('month', e.event_date) END) "
            "AS INTEGER)",
        )
        + " AS active_months_365d",
        known(
            365,
            f"CAST(count(DISTINCT CASE WHEN {year} AND e.event_ts < o.observation_date "
            "- INTERVAL 275 DAY THEN e.order_id END) AS INTEGER)",
        )
        + " AS orders_prior_year_horizon",
    ]
    return f"""
    WITH data_start AS (
        SELECT CAST(min(event_ts) AS DATE) AS first_day
        FROM {SPEC.db_schema("raw")}.{SPEC.raw_table}
    ),
    obs AS (
        SELECT CAST(range AS DATE) AS observation_date
        FROM range(DATE '{start}', DATE '{end}' + INTERVAL 1 DAY, INTERVAL 1 MONTH)
    ),
    agg AS (
        SELECT e.customer_id, o.observation_date,
            {", ".join(per_window)},
            CAST(date_diff('day', max(e.event_date) FILTER (WHERE e.event_type = 'purchase'),
                 o.observation_date) AS INTEGER) AS recency_days,
            CAST(date_diff('day', min(e.event_date) FILTER (WHERE e.event_type = 'purchase'),
                 o.observation_date) AS INTEGER) AS tenure_days,
            CAST(count(DISTINCT e.order_id) FILTER (WHERE e.event_type = 'purchase') AS INTEGER)
                AS lifetime_orders,
            CAST(sum(e.amount) FILTER (WHERE e.event_type = 'purchase') AS DOUBLE)
                AS lifetime_revenue,
            count(*) FILTER (WHERE e.event_type = 'purchase') AS lifetime_lines
        FROM {STAGING}.stg_events AS e
        JOIN obs AS o ON e.event_ts < o.observation_date
        GROUP BY e.customer_id, o.observation_date
        HAVING count(*) FILTER (WHERE e.event_type = 'purchase') > 0
    ),
    purchase_days AS (
        SELECT DISTINCT e.customer_id, o.observation_date, e.event_date
        FROM {STAGING}.stg_events AS e
        JOIN obs AS o ON e.event_ts < o.observation_date
        WHERE e.event_type = 'purchase'
    ),
    gaps AS (
        SELECT customer_id, observation_date,
            avg(gap) AS gap_mean, stddev_pop(gap) AS gap_std, max(gap) AS gap_max,
            count(*) FILTER (WHERE gap > 90) AS n_lapses
        FROM (
            SELECT customer_id, observation_date,
                date_diff('day', lag(event_date) OVER (
                    PARTITION BY customer_id, observation_date ORDER BY event_date), event_date)
                    AS gap
            FROM purchase_days
        )
        WHERE gap IS NOT NULL
        GROUP BY customer_id, observation_date
    )
    SELECT agg.* EXCLUDE (lifetime_revenue), agg.lifetime_revenue,
        (orders_30d + 1.0) / (orders_60d - orders_30d + 1.0) AS orders_trend_30d,
        (revenue_30d + 1.0) / (revenue_60d - revenue_30d + 1.0) AS revenue_trend_30d,
        coalesce(gaps.gap_mean, CAST(tenure_days AS DOUBLE)) AS interpurchase_mean_days,
        coalesce(gaps.gap_std, 0.0) AS interpurchase_std_days,
        CAST(month(observation_date) AS INTEGER) AS observation_month,
        CAST(coalesce(gaps.gap_max, 0) AS INTEGER) AS max_gap_days,
        CAST(coalesce(gaps.n_lapses, 0) AS INTEGER) AS n_lapses_90d,
        recency_days / coalesce(gaps.gap_mean, CAST(tenure_days AS DOUBLE)) AS recency_to_mean_gap,
        lifetime_revenue / lifetime_orders AS avg_order_value,
        lifetime_lines / lifetime_orders AS avg_lines_per_order,
        lifetime_revenue / lifetime_lines AS avg_line_value
    FROM agg LEFT JOIN gaps USING (customer_id, observation_date)
    """


FLOOR_SQL = f"""
    SELECT customer_id, count(*) AS n_events, sum(amount) AS amount, max(event_ts) AS last_ts
    FROM {STAGING}.stg_events GROUP BY customer_id
"""


def _one_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def assert_identical(con: duckdb.DuckDBPyConnection) -> int:
    """Compare reference.naive with the tile build column by column; return rows."""
    features = feature_set(SPEC).features
    mismatches = []
    for f in features:
        if f.dtype == "double":
            condition = (
                f"t.{f.name} IS DISTINCT FROM n.{f.name} AND coalesce("
                f"abs(t.{f.name} - n.{f.name}) > 1e-9 * greatest(1.0, abs(n.{f.name})), true)"
            )
        else:
            condition = f"t.{f.name} IS DISTINCT FROM n.{f.name}"
        mismatches.append(f"count(*) FILTER (WHERE {condition}) AS {f.name}")
    (n_tiles,) = _one_row(con, f"SELECT count(*) FROM {FEATURES}.fct_features")
    (n_naive,) = _one_row(con, "SELECT count(*) FROM reference.naive")
    assert n_tiles == n_naive, f"row counts differ: tiles {n_tiles}, naive {n_naive}"
    row = _one_row(
        con,
        f"SELECT count(*), {', '.join(mismatches)} FROM {FEATURES}.fct_features AS t "
        "JOIN reference.naive AS n USING (customer_id, observation_date)",
    )
    assert row[0] == n_tiles, "keys differ between tile build and naive reference"
    bad = {f.name: n for f, n in zip(features, row[1:], strict=True) if n}
    assert not bad, f"features differ: {bad}"
    return n_tiles


def timed(
    label: str, action: Callable[[], object], timings: dict[str, float], repeat: int = 1
) -> None:
    """Best of ``repeat`` runs: the first run also pays for cold file pages and allocations."""
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        runs.append(time.perf_counter() - began)
    timings[label] = min(runs)
    print(f"  {label:<28} {timings[label]:8.2f} s  (best of {repeat})", flush=True)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--observations", type=int, default=21, help="monthly observation dates")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0 = all cores)")
    parser.add_argument("--memory-limit", default="3GB", help="DuckDB memory_limit")
    parser.add_argument("--workdir", type=Path, default=None, help="DuckDB file + spill dir")
    parser.add_argument("--repeat", type=int, default=2, help="best of N for floor and tiles")
    parser.add_argument("--skip-naive", action="store_true", help="no reference (100M runs)")
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="feature-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "bench.duckdb"
    db_path.unlink(missing_ok=True)
    start, end = observation_range(args.observations)

    def connect() -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(db_path))
        con.execute(f"SET memory_limit = '{args.memory_limit}'")
        con.execute(f"SET temp_directory = '{workdir / 'spill'}'")
        con.execute("SET preserve_insertion_order = false")
        if args.threads:
            con.execute(f"SET threads = {args.threads}")
        return con

    print(
        f"events={args.events:,} customers={args.customers:,} observations={args.observations} "
        f"({start}..{end}) threads={args.threads or 'all'} memory_limit={args.memory_limit}"
    )
    timings: dict[str, float] = {}
    con = connect()
    timed(
        "generate events",
        lambda: generate(con, args.events, args.customers, args.seed, SPEC.db_schema("raw")),
        timings,
    )
    con.execute("CHECKPOINT")
    con.close()  # dbt compile opens the file itself
    nodes = compile_models(db_path, start, end)
    con = connect()
    run_models(con, nodes, FEATURE_CHAIN[:1])  # the staging view all three read

    timed(
        "floor: GROUP BY customer",
        lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE floor AS {FLOOR_SQL}"),
        timings,
        args.repeat,
    )
    per_model: dict[str, float] = {}
    timed(
        "tiles: dbt feature models",
        lambda: run_models(con, nodes, FEATURE_CHAIN, per_model),
        timings,
        args.repeat,
    )
    for name, seconds in per_model.items():  # the last repetition
        print(f"    {name:<30} {seconds:6.2f} s")
    timed("tiles: + labels", lambda: run_models(con, nodes, LABEL_CHAIN), timings)
    if not args.skip_naive:
        con.execute("CREATE SCHEMA IF NOT EXISTS reference")
        timed(
            "naive: range join",
            lambda: con.execute(
                f"CREATE OR REPLACE TABLE reference.naive AS {naive_sql(start, end)}"
            ),
            timings,
        )
        rows = assert_identical(con)
        print(
            f"  naive == tiles on {rows:,} (customer, T) rows, {len(feature_set(SPEC).features)} features"
        )
    con.close()

    floor = timings["floor: GROUP BY customer"]
    tiles = timings["tiles: dbt feature models"]
    print(f"tiles / floor = {tiles / floor:.2f}x (target <= 3x)")
    additive = sum(v for k, v in per_model.items() if k != "int_product_days")
    print(
        f"  of which distinct-product tiles {per_model['int_product_days'] / floor:.2f}x, "
        f"everything else {additive / floor:.2f}x"
    )
    if "naive: range join" in timings:
        print(f"naive / floor = {timings['naive: range join'] / floor:.2f}x")
        print(f"naive / tiles = {timings['naive: range join'] / tiles:.2f}x")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS = {peak_mb:,.0f} MB")
    timings["peak_rss_mb"] = peak_mb
    return timings


if __name__ == "__main__":
    main()
