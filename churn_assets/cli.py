"""The main job behind ``make run``: materialize the whole graph on the embedded default.

Runs go through the project's Dagster instance (``DAGSTER_HOME=.state/dagster``), so every
run, check result and metadata entry is visible afterwards in ``make ui``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from churn_assets import progress
from churn_assets.progress import log_to_file, progress_logger
from churn_assets.settings import REPO_ROOT, ChurnSettings, settings_from_env

SINGLE_RUN = dg.BackfillPolicy.single_run()
MLFLOW_STORE_SCRIPT = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
# Groups only built when asked for by name (``make evaluate``: --group evaluation): slow
# resampled evaluations that no other asset reads.
ON_REQUEST_GROUPS = ("evaluation",)


def ensure_dagster_home() -> Path:
    """Default to the project-local instance, so a bare ``python -m churn_assets.cli`` works
    too; any ``DAGSTER_HOME`` gets the project's instance config (copied: a relative link
    would dangle from wherever the user points it)."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".state" / "dagster")))
    home = home.resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    config, project = home / "dagster.yaml", REPO_ROOT / "dagster.yaml"
    if config.is_symlink():
        config.unlink()
    # refreshed while it is the project's own copy; a config the user wrote is left alone
    if not config.exists() or config.read_text().startswith(project.read_text().splitlines()[0]):
        shutil.copyfile(project, config)
    return home


def prepare(settings: ChurnSettings | None = None) -> None:
    """Re-parse every declared dataset's dbt manifest (never at import time), and create a
    missing MLflow store meanwhile: a fresh sqlite store spends about 9 s in its migrations,
    which would otherwise stall the first training step."""
    from churn_assets.defs.features.project import prepare_manifests
    from churn_assets.lib.datasets import load_declarations

    store = _create_mlflow_store(settings) if settings else None
    prepare_manifests(list(load_declarations().values()))
    if store is not None:
        _, error = store.communicate()
        if store.returncode != 0:
            raise RuntimeError(f"creating the MLflow store failed: {error.decode()[-2000:]}")


def _create_mlflow_store(settings: ChurnSettings) -> subprocess.Popen[bytes] | None:
    """Create the sqlite tracking store in a process of its own (a second core's work)."""
    uri = settings.mlflow_tracking_uri
    if not uri.startswith("sqlite:///") or Path(uri.removeprefix("sqlite:///")).exists():
        return None
    Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", MLFLOW_STORE_SCRIPT, uri],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _graph(
    datasets: Sequence[str], groups: Sequence[str] = ()
) -> tuple[dg.Definitions, list[dg.AssetKey], list[dg.AssetKey]]:
    from churn_assets.definitions import defs as load_defs

    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    materializable = [
        k
        for k in keys
        if graph.get(k).is_materializable
        and (not datasets or graph.get(k).tags.get("dataset") in datasets)
        and (
            graph.get(k).group_name in groups
            if groups
            else graph.get(k).group_name not in ON_REQUEST_GROUPS
        )
    ]
    partitioned = [k for k in materializable if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in materializable if k not in partitioned]
    return defs, unpartitioned, partitioned


def say(*parts: object) -> None:
    """Print to the terminal (the process's own stdout goes to the log file during a run)."""
    print(*parts, file=progress.CONSOLE, flush=True)


def _execute(
    defs: dg.Definitions,
    log_file: Path,
    name: str,
    keys: Sequence[dg.AssetKey],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> bool:
    job = dg.Definitions.merge(
        defs,
        dg.Definitions(
            jobs=[dg.define_asset_job(name, selection=list(keys))],
            loggers={"progress": progress_logger},
        ),
    ).resolve_job_def(name)
    tags = (
        {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
        if partition_range
        else None
    )
    label = partition_key or (
        f"{partition_range[0]} .. {partition_range[1]}" if partition_range else ""
    )
    say(f"{name} {label}".rstrip())
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
        partition_key=partition_key,
        tags=tags,
        run_config={"loggers": {"progress": {"config": {"log_file": str(log_file)}}}},
    )
    return result.success


def run(datasets: Sequence[str] = (), groups: Sequence[str] = ()) -> int:
    """Unpartitioned graph first (raw → dbt → training sets → models), then every month.
    ``groups`` limits the run to some asset groups (``make demo`` refreshes only ``business``
    on top of an existing build); without it, every group but :data:`ON_REQUEST_GROUPS`."""
    settings = settings_from_env()
    settings.ensure_dirs()
    log_file = Path(settings.state_dir) / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_to_file(log_file)
    say(f"every log line: {log_file}")
    ensure_dagster_home()
    started = time.perf_counter()
    prepare(settings)
    defs, unpartitioned, partitioned = _graph(datasets, groups)
    say(
        f"dbt manifests parsed in {time.perf_counter() - started:.0f} s; materializing "
        f"{len(unpartitioned)} assets, then {len(partitioned)} per observation date"
    )
    if unpartitioned and not _execute(defs, log_file, "main_job", unpartitioned):
        say("main job failed: see `make ui` → Runs for the failing step")
        return 1
    for keys in _by_partitions(defs, partitioned):
        if not _run_months(defs, log_file, keys):
            return 1
    failed = print_summary(
        defs, settings, [*unpartitioned, *partitioned], time.perf_counter() - started
    )
    return 1 if failed else 0


def _by_partitions(
    defs: dg.Definitions, partitioned: Sequence[dg.AssetKey]
) -> list[list[dg.AssetKey]]:
    """Partitioned assets grouped by their partitions (one group per events dataset)."""
    graph = defs.resolve_asset_graph()
    groups: dict[str, list[dg.AssetKey]] = {}
    for key in partitioned:
        partitions_def = graph.get(key).partitions_def
        assert isinstance(partitions_def, dg.DynamicPartitionsDefinition)
        groups.setdefault(str(partitions_def.name), []).append(key)
    return list(groups.values())


def _business_months(graph: Any, keys: Sequence[dg.AssetKey], months: list[str]) -> list[str]:
    """The months whose decisions ``make run`` prepares: the newest matured one (its backtest
    can be read against what happened) and the newest one (today's campaign). A UI backfill of
    the business group prepares any others."""
    from churn_assets.lib.datasets import load_declarations

    dataset = graph.get(keys[0]).tags["dataset"]
    spec = load_declarations()[dataset]
    with duckdb.connect(settings_from_env().duckdb_path, read_only=True) as con:
        row = con.execute(
            f"SELECT max(observation_date) FROM (SELECT observation_date FROM {spec.scoring_table} "
            "GROUP BY 1 HAVING bool_and(is_mature))"
        ).fetchone()
    matured = [str(row[0])] if row and row[0] is not None else []
    return sorted({*matured, months[-1]})


def _run_months(defs: dg.Definitions, log_file: Path, partitioned: Sequence[dg.AssetKey]) -> bool:
    """Features at T, scores, drift and realized performance of every observation date in one
    run (their backfill policy is a single run, as a UI backfill would do); then business
    decisions for the months :func:`_business_months` picks."""
    graph = defs.resolve_asset_graph()
    partitions_def = graph.get(partitioned[0]).partitions_def
    assert isinstance(partitions_def, dg.DynamicPartitionsDefinition)
    months = sorted(dg.DagsterInstance.get().get_dynamic_partitions(str(partitions_def.name)))
    if not months:
        say(f"{partitions_def.name}: no observation date: nothing to monitor")
        return False
    business = [k for k in partitioned if graph.get(k).group_name == "business"]
    every_month = [k for k in partitioned if k not in business]
    assert all(graph.get(k).backfill_policy == SINGLE_RUN for k in every_month), every_month
    if every_month and not _execute(
        defs, log_file, "monthly_backfill_job", every_month, partition_range=(months[0], months[-1])
    ):
        say(f"backfill of {months[0]} .. {months[-1]} failed")
        return False
    for month in _business_months(graph, business, months) if business else []:
        if not _execute(defs, log_file, "business_job", business, partition_key=month):
            say(f"business decisions failed for {month}")
            return False
    return True


def print_summary(
    defs: dg.Definitions, settings: ChurnSettings, keys: Sequence[dg.AssetKey], seconds: float
) -> int:
    """Print what was built and where to look; return the number of failed ERROR checks."""
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    say(f"\nBuilt {len(keys)} assets in {seconds:.0f}s\n")
    say(f"{'group':<12} {'asset':<40} rows / key figure")
    for key in sorted(keys, key=lambda k: (graph.get(k).group_name, k.to_user_string())):
        event = instance.get_latest_materialization_event(key)
        metadata = (
            event.asset_materialization.metadata if event and event.asset_materialization else {}
        )
        figure = next(
            (
                f"{name}={getattr(metadata[name], 'value', metadata[name])}"
                for name in (
                    "dagster/row_count",
                    "chosen",
                    "test_roc_auc",
                    "selected_mean_test_roc_auc",
                    "decision",
                    "share_drifted",
                    "report_url",
                )
                if name in metadata
            ),
            "",
        )
        say(f"{graph.get(key).group_name:<12} {key.to_user_string():<40} {figure}")
    passed, warned, failed = _check_outcomes(instance, graph)
    say(f"\nAsset checks: {passed} passed, {warned} warnings, {failed} failed")
    say(
        f"\nDuckDB:   {settings.duckdb_path}\nReports:  {settings.reports_dir}\n"
        f"Training sets: {settings.processed_dir}\n"
        "Next: `make ui` (Dagster, http://127.0.0.1:3000) and `make mlflow-ui` (http://127.0.0.1:5000)"
    )
    return failed


def _check_outcomes(instance: dg.DagsterInstance, graph: dg.AssetGraph) -> tuple[int, int, int]:
    """Latest evaluation of every check: passed, failed with WARN severity, failed with ERROR."""
    passed = warned = failed = 0
    records = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(graph.asset_check_keys)
    )
    for record in records.values():
        evaluation = record.evaluation if record else None
        if evaluation is None:
            continue
        if evaluation.passed:
            passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            warned += 1
        else:
            failed += 1
    return passed, warned, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="churn_assets")
    parser.add_argument("command", choices=["run", "prepare", "dbt-vars"])
    parser.add_argument(
        "--dataset", action="append", default=[], help="only this dataset (repeatable)"
    )
    parser.add_argument(
        "--group", action="append", default=[], help="only this asset group (repeatable)"
    )
    args = parser.parse_args(argv)
    if args.command == "prepare":
        ensure_dagster_home()
        prepare()
        return 0
    if args.command == "dbt-vars":
        return print_dbt_vars(args.dataset)
    return run(args.dataset, args.group)


def print_dbt_vars(datasets: Sequence[str]) -> int:
    """The dbt vars of one dataset as JSON, for running dbt by hand (``make dbt-docs``)."""
    from churn_assets.lib.datasets import load_declarations
    from churn_assets.lib.features_dbt import dbt_vars

    specs = load_declarations()
    name = datasets[0] if datasets else next(iter(specs))
    if name not in specs:
        print(f"unknown dataset {name!r}; declared: {sorted(specs)}", file=sys.stderr)
        return 2
    print(json.dumps(dbt_vars(specs[name], settings_from_env().duckdb_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
