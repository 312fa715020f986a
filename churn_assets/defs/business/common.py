"""What every business asset of a dataset shares: decoration, tables, the playbook and reads.

Business assets are partitioned like the monitoring assets they read (one observation date per
partition for an events dataset, the snapshot otherwise) and exchange data through DuckDB tables
``<dataset>_business.<table>`` keyed by ``observation_date``: each asset replaces its own rows
for its date, so re-running one month never touches another, and every figure a later asset or
the report shows can be traced back to a row someone can query.
"""

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import dagster as dg
import duckdb as duckdb_api
import polars as pl

from churn_assets.lib.business.playbook import Playbook, PlaybookError, load_playbook, playbook_path
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import replace_rows
from churn_assets.partitions import observation_dates
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_BUSINESS

GROUP = "business"
STAGE = "business"


def has_playbook(spec: DatasetSpec) -> bool:
    """A dataset gets business assets once the business has written its playbook."""
    return playbook_path(spec.name).exists()


def playbook_code_version(spec: DatasetSpec) -> str:
    """Hash of the playbook file: the ``code_version`` of the assets that apply it, so editing
    the playbook marks them stale in the UI until they are re-materialized."""
    return hashlib.sha256(playbook_path(spec.name).read_bytes()).hexdigest()[:12]


def read_playbook(spec: DatasetSpec) -> Playbook:
    """The dataset's playbook, or a run failure listing every problem in the file."""
    try:
        return load_playbook(playbook_path(spec.name), spec.name)
    except PlaybookError as error:
        raise dg.Failure(
            "the playbook is invalid; fix it and re-materialize:\n" + "\n".join(error.errors)
        ) from error


def business_asset(
    spec: DatasetSpec,
    name: str,
    deps: Sequence[str],
    kinds: set[str],
    description: str,
    *,
    check_specs: Sequence[dg.AssetCheckSpec] = (),
    uses_playbook: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """The decorator of a business asset: the monitoring stage's partitions, the ``duckdb``
    pool (every business asset writes the DuckDB file), the retention team as owner."""
    return dg.asset(
        name=spec.key(name),
        partitions_def=observation_dates(spec) if spec.kind == "events" else None,
        deps=[spec.key(d) for d in deps],
        group_name=GROUP,
        kinds=kinds,
        owners=[OWNER_BUSINESS],
        pool="duckdb",
        tags={"layer": "business", "dataset": spec.name},
        code_version=playbook_code_version(spec) if uses_playbook else None,
        check_specs=list(check_specs),
        metadata=metadata,
        description=description,
    )


def table_name(spec: DatasetSpec, table: str) -> str:
    return f"{spec.db_schema(STAGE)}.{table}"


def write_rows(
    duckdb: DuckDBResource, spec: DatasetSpec, day: date, tables: Mapping[str, pl.DataFrame]
) -> None:
    """Replace each table's rows of ``day`` with the frame's (all tables in one connection)."""
    with duckdb.connect() as con:
        for table, frame in tables.items():
            replace_rows(con, spec.db_schema(STAGE), table, frame, "observation_date = ?", [day])


def read_rows(
    duckdb: DuckDBResource, spec: DatasetSpec, table: str, day: date, *, until: bool = False
) -> pl.DataFrame:
    """A business table's rows of ``day`` (``until``: of every date up to it, oldest first);
    empty when the table does not exist yet."""
    operator = "<=" if until else "="
    with duckdb.connect(read_only=True) as con:
        try:
            return con.sql(
                f"SELECT * FROM {table_name(spec, table)} WHERE observation_date {operator} ? "
                "ORDER BY observation_date",
                params=[day],
            ).pl()
        except duckdb_api.CatalogException:  # not written yet
            return pl.DataFrame()


def require_rows(
    duckdb: DuckDBResource, spec: DatasetSpec, table: str, day: date, producer: str
) -> pl.DataFrame:
    """Like :func:`read_rows` for one date, failing with what to materialize when empty."""
    rows = read_rows(duckdb, spec, table, day)
    if rows.is_empty():
        raise dg.Failure(
            f"no rows in {table_name(spec, table)} at {day}: materialize {spec.key(producer)} first"
        )
    return rows


def rounded(values: Mapping[str, Any], digits: int = 4) -> dict[str, Any]:
    """Metadata figures as people read them: money-sized figures (100 and up) to two decimals,
    rates and small figures to ``digits``, NaN as None."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, float):
            out[key] = None if value != value else round(value, 2 if abs(value) >= 100 else digits)
        else:
            out[key] = value
    return out
