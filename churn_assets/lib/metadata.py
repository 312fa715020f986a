"""Render frames and figures as Dagster-friendly markdown, so reports show up in the UI."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def md_table(frame: pl.DataFrame, float_digits: int = 4, max_rows: int = 50) -> str:
    """A GitHub-flavoured markdown table (Dagster renders these in metadata)."""
    shown = frame.head(max_rows)

    def cell(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.{float_digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "---|" * len(shown.columns),
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in shown.iter_rows()]
    if frame.height > max_rows:
        lines.append(f"\n_{frame.height - max_rows} more rows not shown_")
    return "\n".join(lines)


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def png_md(png: bytes, alt: str) -> str:
    """Inline a PNG as a base64 data URI: the Dagster UI shows it without any file server."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
