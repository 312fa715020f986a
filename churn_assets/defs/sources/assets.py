"""Raw tables: a bundled file is validated against its contract, then swapped in atomically.

Validation happens *before* the swap, so a bad file fails the run with a message naming the
file, column and rows, downstream assets never start, and the last good table stays queryable.
"""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from churn_assets.lib.contracts import ContractViolation, read_retail_parquet, read_telco_csv
from churn_assets.lib.duckdb_io import drop_staging, quote, staging_name, swap_in
from churn_assets.lib.metadata import md_table, sha256_file
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_DATA, get_settings

RAW_SCHEMA = "raw"
TELCO_CHECK = "telco_contract"
RETAIL_CHECK = "retail_contract"


class TelcoSourceConfig(dg.Config):
    """Point the load at another customer file (same contract) from the launchpad."""

    path: str = ""


class RetailSourceConfig(dg.Config):
    """Extra event files to validate and append, besides the bundled history."""

    extra_paths: list[str] = Field(default_factory=list)


def _write_table(duckdb: DuckDBResource, table: str, frame: pl.DataFrame) -> None:
    """Create ``raw.<table>__incoming`` from the frame, then swap it in one transaction."""
    arrow = frame.to_arrow()
    with duckdb.connect() as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        drop_staging(con, RAW_SCHEMA, table)
        con.register("incoming_frame", arrow)
        con.execute(
            f"CREATE TABLE {RAW_SCHEMA}.{quote(staging_name(table))} AS SELECT * FROM incoming_frame"
        )
        con.unregister("incoming_frame")
        swap_in(con, RAW_SCHEMA, table)


def _load_metadata(frame: pl.DataFrame, files: dict[str, str]) -> dict[str, Any]:
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
        ),
        "source_files": dg.MetadataValue.json(files),
        "loaded_at": dg.MetadataValue.timestamp(datetime.now().timestamp()),
        "preview": dg.MetadataValue.md(md_table(frame.head(10))),
    }


def _fail(check: str, asset: str, error: ContractViolation) -> Iterator[dg.AssetCheckResult]:
    """Record the failed contract in the UI, then stop the run before anything is replaced."""
    yield dg.AssetCheckResult(
        check_name=check,
        asset_key=asset,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "file": error.source,
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in error.problems)),
        },
    )
    raise dg.Failure(description=str(error), metadata={"file": error.source})


def raw_asset(name: str, file_kind: str, check: str, contract: str) -> Any:
    """A raw table: DuckDB writer (``duckdb`` pool) with its contract as a blocking check."""
    return dg.asset(
        name=name,
        group_name="sources",
        kinds={"duckdb", "polars", file_kind},
        owners=[OWNER_DATA],
        pool="duckdb",
        code_version="1",
        tags={"layer": "raw"},
        check_specs=[dg.AssetCheckSpec(check, asset=name, blocking=True, description=contract)],
    )


@raw_asset(
    "raw_telco_customers",
    "csv",
    TELCO_CHECK,
    "Pandera contract: types, nulls, unique customer_id, allowed categories, ranges, "
    "TotalCharges consistent with tenure x MonthlyCharges.",
)
def raw_telco_customers(
    context: dg.AssetExecutionContext, config: TelcoSourceConfig, duckdb: DuckDBResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """IBM Telco customers (one snapshot, 7,043 rows) typed into ``raw.telco_customers``.

    Blank ``TotalCharges`` (tenure 0, nothing billed yet) become 0.0 with
    ``total_charges_imputed = true``; a blank anywhere else breaks the contract.
    """
    path = Path(config.path) if config.path else get_settings().telco_csv
    try:
        frame = read_telco_csv(path)
    except ContractViolation as error:
        yield from _fail(TELCO_CHECK, "raw_telco_customers", error)
        return
    _write_table(duckdb, "telco_customers", frame)
    imputed = int(frame["total_charges_imputed"].sum())
    context.log.info(f"loaded {frame.height} customers from {path}; {imputed} TotalCharges imputed")
    yield dg.MaterializeResult(
        metadata={
            **_load_metadata(frame, {str(path): sha256_file(path)}),
            "source_path": dg.MetadataValue.path(str(path)),
            "sha256": sha256_file(path),
            "total_charges_imputed_rows": imputed,
            "churn_rate": float(frame["churn"].cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=TELCO_CHECK, passed=True, metadata={"rows_validated": frame.height}
            )
        ],
    )


@raw_asset(
    "raw_retail_transactions",
    "parquet",
    RETAIL_CHECK,
    "Pandera contract: types, nulls, invoice format, non-zero quantity, non-negative prices "
    "(except bad-debt adjustments), timestamps from 2009-12-01 to now.",
)
def raw_retail_transactions(
    context: dg.AssetExecutionContext, config: RetailSourceConfig, duckdb: DuckDBResource
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """UCI Online Retail II invoice lines typed into ``raw.retail_transactions``.

    ``event_id`` numbers lines in file order: the real data repeats identical lines, so no
    natural key exists. While replaying, the bundled history is cut at the as-of date and the
    accepted landing files supply the months after it.
    """
    settings = get_settings()
    as_of = settings.history_as_of()
    files = [*settings.retail_source_files(), *(Path(p) for p in config.extra_paths)]
    frames = []
    try:
        for path in files:
            frame = read_retail_parquet(path).with_columns(source_file=pl.lit(path.name))
            if path == settings.retail_parquet and as_of is not None:
                frame = frame.filter(
                    pl.col("invoice_ts") < datetime.combine(as_of, datetime.min.time())
                )
            frames.append(frame)
    except ContractViolation as error:
        yield from _fail(RETAIL_CHECK, "raw_retail_transactions", error)
        return
    events = (
        pl.concat(frames)
        .with_row_index("event_id", offset=1)
        .with_columns(pl.col("event_id").cast(pl.Int64))
    )
    _write_table(duckdb, "retail_transactions", events)
    checksums = {str(p): sha256_file(p) for p in files}
    context.log.info(
        f"loaded {events.height} invoice lines from {len(files)} file(s), as of {as_of}"
    )
    yield dg.MaterializeResult(
        metadata={
            **_load_metadata(events, checksums),
            "source_path": dg.MetadataValue.path(str(settings.retail_parquet)),
            "sha256": checksums[str(settings.retail_parquet)],
            "as_of": str(as_of) if as_of else "full history",
            "first_event": str(events["invoice_ts"].min()),
            "last_event": str(events["invoice_ts"].max()),
            "customers": events["customer_id"].n_unique(),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=RETAIL_CHECK, passed=True, metadata={"rows_validated": events.height}
            )
        ],
    )
