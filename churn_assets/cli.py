"""The main job behind ``make run``: materialize the whole graph on the embedded default.

Runs go through the project's Dagster instance (``DAGSTER_HOME=.state/dagster``), so every
run, check result and metadata entry is visible afterwards in ``make ui``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from churn_assets.settings import REPO_ROOT, get_settings

SINGLE_RUN = dg.BackfillPolicy.single_run()


def _ensure_dagster_home() -> None:
    """Default to the project-local instance, so a bare ``python -m churn_assets.cli`` works too."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(REPO_ROOT / ".state" / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.symlink_to(REPO_ROOT / "dagster.yaml")


def _prepare() -> None:
    """Build the dbt manifest if it is missing (never at import time)."""
    from churn_assets.defs.features.project import prepare_dbt_manifest

    prepare_dbt_manifest()


def _graph() -> tuple[dg.Definitions, list[dg.AssetKey], list[dg.AssetKey]]:
    from churn_assets.definitions import defs as load_defs

    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    materializable = [k for k in keys if graph.get(k).is_materializable]
    partitioned = [k for k in materializable if graph.get(k).partitions_def is not None]
    unpartitioned = [k for k in materializable if k not in partitioned]
    return defs, unpartitioned, partitioned


def _execute(
    defs: dg.Definitions,
    name: str,
    keys: Sequence[dg.AssetKey],
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
) -> bool:
    job = dg.Definitions.merge(
        defs, dg.Definitions(jobs=[dg.define_asset_job(name, selection=list(keys))])
    ).resolve_job_def(name)
    tags = (
        {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
        if partition_range
        else None
    )
    result = job.execute_in_process(
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
        partition_key=partition_key,
        tags=tags,
    )
    return result.success


def run() -> int:
    """Unpartitioned graph first (raw → dbt → training sets → models), then every month."""
    settings = get_settings()
    settings.ensure_dirs()
    _ensure_dagster_home()
    _prepare()
    started = time.perf_counter()
    defs, unpartitioned, partitioned = _graph()
    print(f"materializing {len(unpartitioned)} assets, then {len(partitioned)} monthly assets")
    if not _execute(defs, "main_job", unpartitioned):
        print("main job failed: see `make ui` → Runs for the failing step", file=sys.stderr)
        return 1
    if partitioned and not _run_months(defs, partitioned):
        return 1
    failed = print_summary(defs, [*unpartitioned, *partitioned], time.perf_counter() - started)
    return 1 if failed else 0


def _run_months(defs: dg.Definitions, partitioned: Sequence[dg.AssetKey]) -> bool:
    """Assets whose backfill policy is a single run take every month in one run (as a UI
    backfill would); the rest (scoring, drift, realized performance) run month by month."""
    graph = defs.resolve_asset_graph()
    partitions_def = graph.get(partitioned[0]).partitions_def
    assert partitions_def is not None
    months = partitions_def.get_partition_keys()
    single_run = [k for k in partitioned if graph.get(k).backfill_policy == SINGLE_RUN]
    per_month = [k for k in partitioned if k not in single_run]
    if single_run and not _execute(
        defs, "monthly_backfill_job", single_run, partition_range=(months[0], months[-1])
    ):
        print(f"backfill of {months[0]} .. {months[-1]} failed", file=sys.stderr)
        return False
    for key in months if per_month else []:
        if not _execute(defs, "monthly_job", per_month, partition_key=key):
            print(f"monthly job failed for {key}", file=sys.stderr)
            return False
    return True


def print_summary(defs: dg.Definitions, keys: Sequence[dg.AssetKey], seconds: float) -> int:
    """Print what was built and where to look; return the number of failed ERROR checks."""
    instance = dg.DagsterInstance.get()
    settings = get_settings()
    graph = defs.resolve_asset_graph()
    print(f"\nBuilt {len(keys)} assets in {seconds:.0f}s\n")
    print(f"{'group':<12} {'asset':<40} rows / key figure")
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
                    "roc_auc",
                    "test_roc_auc",
                    "decision",
                    "share_drifted",
                )
                if name in metadata
            ),
            "",
        )
        print(f"{graph.get(key).group_name:<12} {key.to_user_string():<40} {figure}")
    passed, warned, failed = _check_outcomes(instance, graph)
    print(f"\nAsset checks: {passed} passed, {warned} warnings, {failed} failed")
    print(
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
    parser.add_argument("command", choices=["run", "prepare"])
    args = parser.parse_args(argv)
    if args.command == "prepare":
        _prepare()
        return 0
    return run()


if __name__ == "__main__":
    sys.exit(main())
