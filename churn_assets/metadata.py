"""Dagster metadata from frames and figures: what the UI shows on every asset, in one place."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from churn_assets.lib.metadata import png_md
from churn_assets.settings import ChurnSettings

_TABLE_TYPES = {"Int": "int", "UInt": "int", "Float": "float", "Boolean": "bool"}


def _column_type(dtype: pl.DataType) -> str:
    name = str(dtype)
    return next(
        (kind for prefix, kind in _TABLE_TYPES.items() if name.startswith(prefix)), "string"
    )


def _cell(value: object, digits: int) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if value is None or isinstance(value, int | bool | str):
        return value
    return str(value)


def table(frame: pl.DataFrame, max_rows: int = 100, digits: int = 4) -> dg.TableMetadataValue:
    """A frame as a sortable UI table, figures rounded (nobody reads 0.03225806451612903)."""
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _column_type(dtype)) for name, dtype in frame.schema.items()]
    )
    records = [
        dg.TableRecord({k: _cell(v, digits) for k, v in row.items()})
        for row in frame.head(max_rows).to_dicts()
    ]
    return dg.MetadataValue.table(records=records, schema=schema)


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )


def plots(figures: Mapping[str, bytes]) -> dg.MarkdownMetadataValue:
    """PNG figures inlined in one markdown entry (shown in the asset's metadata panel)."""
    return dg.MetadataValue.md("\n\n".join(png_md(png, name) for name, png in figures.items()))


def report_links(settings: ChurnSettings, name: str, path: Path) -> dict[str, dg.MetadataValue]:
    """A file under the reports folder as a link the browser opens (``<name>_url``, served by
    the reports server) and as its path on disk (``<name>_path``)."""
    return {
        f"{name}_url": dg.MetadataValue.url(settings.report_url(path)),
        f"{name}_path": dg.MetadataValue.path(str(path)),
    }
