"""A dataset's raw table: its files validated against the contract, then swapped in atomically.

Validation happens *before* the swap, so a bad file fails the run with a message naming the
file, the user's column and the rows, downstream assets never start (the contract is a blocking
check), and the last good table stays queryable. The DuckDB write lock is held from reading the
files to the swap, so two ingests of the same dataset can never interleave their deliveries.

Deliveries from the landing folder arrive in ``pending/`` and are named in the run config; the
load moves each one to ``accepted/`` (recorded, in order, in ``accepted/manifest.json``) as part
of a successful load, or to ``quarantine/`` with the error when the load is refused.
"""

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from churn_assets import metadata
from churn_assets.lib import landing
from churn_assets.lib.contracts import ContractViolation, read_file
from churn_assets.lib.datasets import DatasetSpec, observation_calendar
from churn_assets.lib.duckdb_io import replace_tables, row_count
from churn_assets.lib.ingest import FileReport, assemble_events, shrink_refusal
from churn_assets.lib.metadata import md_table, sha256_file
from churn_assets.partitions import observation_dates
from churn_assets.resources import DuckDBResource
from churn_assets.settings import ChurnSettings

CONTRACT_CHECK = "contract"
LOAD_TABLE = "load_files"
"""Beside the raw table: which files the current table was loaded from (name, sha256, rows),
written in the same transaction, so provenance records what was actually loaded."""


class RawLoadConfig(dg.Config):
    """Run config of a load: deliveries to add, another file to load, consent to shrink."""

    deliveries: list[str] = Field(
        default_factory=list,
        description="Files to validate and add after the dataset's declared files and accepted "
        "deliveries (for a snapshot: the newest replaces the table). The landing sensor passes "
        "its pending files; a file given by hand is copied into accepted/ once loaded.",
    )
    allow_shrink: bool = Field(
        default=False,
        description="Accept a table much smaller than the last good one (never an empty one).",
    )


def _snapshot_file(spec: DatasetSpec, settings: ChurnSettings, config: RawLoadConfig) -> Path:
    if config.deliveries:
        return Path(config.deliveries[-1])
    accepted = landing.accepted(settings.landing(spec.name))
    return accepted[-1] if accepted else spec.source_files()[0]


def load_frame(
    spec: DatasetSpec, settings: ChurnSettings, config: RawLoadConfig
) -> tuple[pl.DataFrame, list[FileReport]]:
    """The new raw table and what each file contributed (ContractViolation if refused)."""
    deliveries = [Path(p) for p in config.deliveries]
    if spec.kind == "snapshot":
        path = _snapshot_file(spec, settings, config)
        frame = read_file(spec, path)
        return frame, [FileReport(str(path), frame.height, frame.height, 0)]
    accepted = landing.accepted(settings.landing(spec.name))
    return assemble_events(
        spec, spec.source_files(), accepted + deliveries, as_of=settings.history_as_of(spec.name)
    )


def load_record(reports: list[FileReport]) -> pl.DataFrame:
    loaded_at = datetime.now()
    return pl.DataFrame(
        [
            {
                "file": r.file,
                "sha256": sha256_file(Path(r.file)),
                "rows": r.rows,
                "new_events": r.new_events,
                "duplicates_skipped": r.duplicates_skipped,
                "replaced_days": ", ".join(r.replaced_days),
                "loaded_at": loaded_at,
            }
            for r in reports
        ]
    )


def _fail(spec: DatasetSpec, asset: str, error: ContractViolation) -> Iterator[dg.AssetCheckResult]:
    """Record the failed contract in the UI, then stop the run before anything is replaced."""
    yield dg.AssetCheckResult(
        check_name=CONTRACT_CHECK,
        asset_key=asset,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "file": error.source,
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in error.problems)),
        },
    )
    raise dg.Failure(description=str(error), metadata={"file": error.source})


def _register_calendar(
    context: dg.AssetExecutionContext, spec: DatasetSpec, frame: pl.DataFrame, as_of: date | None
) -> dict[str, Any]:
    """Make the observation dates the data supports into partitions; drop the ones past it."""
    first, last = frame["event_ts"].min(), frame["event_ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    dates, warnings = observation_calendar(spec, first, last, as_of)
    for warning in warnings:
        context.log.warning(warning)
    partitions = observation_dates(spec)
    keys = [d.isoformat() for d in dates]
    existing = set(context.instance.get_dynamic_partitions(partitions.name))
    context.instance.add_dynamic_partitions(partitions.name, [k for k in keys if k not in existing])
    for stale in sorted(existing - set(keys)):
        context.instance.delete_dynamic_partition(partitions.name, stale)
    return {
        "first_event": str(first),
        "last_event": str(last),
        "observation_dates": f"{keys[0]} .. {keys[-1]} ({len(keys)})" if keys else "none",
        "calendar_warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
        "customers": frame["customer_id"].drop_nulls().n_unique(),
    }


def build_raw_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key(f"raw_{spec.raw_table}")
    schema, table = spec.db_schema("raw"), spec.raw_table

    @dg.asset(
        name=name,
        group_name="sources",
        kinds={"duckdb", "polars"},
        owners=[spec.owner],
        pool="duckdb",
        tags={"layer": "raw", "dataset": spec.name},
        check_specs=[
            dg.AssetCheckSpec(
                CONTRACT_CHECK,
                asset=name,
                blocking=True,
                description=f"The {spec.kind} contract and {spec.name}'s declared rules; the "
                "shrink guard; the overlap policy.",
            )
        ],
        description=f"{spec.description.strip()} Validated against the {spec.kind} contract "
        f"into {schema}.{table}.",
    )
    def raw(
        context: dg.AssetExecutionContext,
        config: RawLoadConfig,
        settings: ChurnSettings,
        duckdb: DuckDBResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        folders = settings.landing(spec.name).ensure()
        with duckdb.connect() as con:
            previous = row_count(con, schema, table)
            try:
                frame, reports = load_frame(spec, settings, config)
                refusal = (
                    None
                    if config.allow_shrink
                    else shrink_refusal(previous, frame.height, spec.shrink_guard)
                )
                if refusal is None and frame.height == 0:
                    refusal = shrink_refusal(previous, 0, spec.shrink_guard)
                if refusal:
                    source = config.deliveries[-1] if config.deliveries else spec.files[0]
                    raise ContractViolation(source, [refusal])
            except ContractViolation as error:
                for path in config.deliveries:
                    landing.quarantine(folders, Path(path), f"ingest refused: {error}")
                yield from _fail(spec, name, error)
                return
            loads = load_record(reports)
            for path in config.deliveries:
                landing.accept(folders, Path(path))
            replace_tables(con, schema, {table: frame, LOAD_TABLE: loads})
        as_of = settings.history_as_of(spec.name)
        extra = _register_calendar(context, spec, frame, as_of) if spec.kind == "events" else {}
        context.log.info(f"loaded {frame.height:,} rows into {schema}.{table} (was {previous})")
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": frame.height,
                "dagster/column_schema": metadata.column_schema(frame),
                "previous_row_count": previous if previous is not None else "none",
                "files": metadata.table(loads),
                # this load's deliveries: re-delivered events already in the table change nothing
                "duplicates_skipped": sum(
                    r.duplicates_skipped for r in reports if r.file in config.deliveries
                ),
                "as_of": str(settings.history_as_of(spec.name) or "full history"),
                "preview": dg.MetadataValue.md(md_table(frame.head(10))),
                **extra,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=CONTRACT_CHECK,
                    passed=True,
                    metadata={"rows_validated": frame.height},
                )
            ],
        )

    return raw
