"""Frames and figures as text and images any viewer shows: markdown tables, PNGs, checksums."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: assets run in worker processes without a display

import matplotlib.pyplot as plt
import polars as pl


def readable(value: object, digits: int = 4) -> str:
    """A figure as a person reads it: thousands separators, a few significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "NaN"
        return f"{value:,.0f}" if abs(value) >= 1e5 else f"{value:.{digits}g}"
    return str(value)


def mean(series: pl.Series) -> float:
    """Mean of a numeric or boolean column as a float (0.0 when empty)."""
    return (
        float(series.cast(pl.Float64).fill_null(float("nan")).to_numpy().mean())
        if len(series)
        else 0.0
    )


def md_table(frame: pl.DataFrame, max_rows: int = 50, digits: int = 4) -> str:
    """A GitHub-flavoured markdown table (Dagster renders these in metadata)."""
    shown = frame.head(max_rows)
    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
    ]
    lines += [
        "| "
        + " | ".join(readable(v, digits).replace("|", "\\|").replace("\n", " ") for v in row)
        + " |"
        for row in shown.iter_rows()
    ]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows} more rows not shown_")
    return "\n".join(lines)


def figure_png(fig: Any, dpi: int = 90) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (figures leak memory otherwise)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}"


def png_md(png: bytes, alt: str) -> str:
    """Inline a PNG as a base64 data URI: the Dagster UI shows it without any file server."""
    return f"![{alt}]({png_data_uri(png)})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
