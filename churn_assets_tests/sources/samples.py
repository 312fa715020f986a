"""Small real samples of the bundled datasets, declared as their own datasets, for fast
ingestion tests: the real contracts and declarations, a fraction of the rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from churn_assets.lib.datasets import DatasetSpec, load_declarations

ARCHIVE_END = datetime(2010, 7, 1)
DELIVERY_END = datetime(2010, 8, 1)


def _retail_rows(spec: DatasetSpec, start: datetime, end: datetime) -> pl.DataFrame:
    """Every line of one customer in 25 (and no anonymous line), between two instants."""
    return (
        pl.scan_parquet(spec.source_files()[0])
        .filter(
            (pl.col("invoice_ts") >= start)
            & (pl.col("invoice_ts") < end)
            & (pl.col("customer_id") % 25 == 0)
        )
        .collect()
    )


def retail_sample(folder: Path) -> tuple[DatasetSpec, pl.DataFrame]:
    """Retail declared on an archive of 2010-01 .. 2010-06 (one customer in 25), and the next
    month of the same customers, as a good delivery in the retailer's own shape."""
    spec = load_declarations()["retail"]
    archive = folder / "retail_archive.parquet"
    _retail_rows(spec, datetime(2010, 1, 1), ARCHIVE_END).write_parquet(archive)
    delivery = _retail_rows(spec, ARCHIVE_END, DELIVERY_END)
    return spec.model_copy(update={"files": [str(archive)]}), delivery


def telco_sample(folder: Path, rows: int = 300) -> tuple[DatasetSpec, list[str]]:
    """Telco declared on its first ``rows`` customers, and those CSV lines (header first)."""
    spec = load_declarations()["telco"]
    lines = spec.source_files()[0].read_text().splitlines()[: rows + 1]
    path = folder / "telco_sample.csv"
    path.write_text("\n".join(lines) + "\n")
    return spec.model_copy(update={"files": [str(path)]}), lines
