"""Self-contained HTML pages: reports that open anywhere (mail, archive, a browser), with
their plots inlined, so no file server or asset folder has to travel with them."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

import polars as pl

from churn_assets.lib.metadata import png_data_uri, readable

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f5f8; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 4px; } img { max-width: 100%; }
.note { color: #555; font-size: 0.9em; } .ok { color: #2e7d32; } .warn { color: #ef6c00; }
.alert { color: #c62828; } .big { font-size: 1.8em; font-weight: bold; }
.tiles { display: flex; flex-wrap: wrap; gap: 1em; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 12em; }
"""


def escape(text: object) -> str:
    return html.escape(str(text))


def table_html(frame: pl.DataFrame, max_rows: int = 200, digits: int = 4) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{escape(readable(v, digits))}</td>" for v in row) + "</tr>"
        for row in frame.head(max_rows).iter_rows()
    )
    more = (
        f"<p class='note'>{frame.height - max_rows:,} more rows not shown</p>"
        if frame.height > max_rows
        else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>{more}"


def image_html(png: bytes, alt: str) -> str:
    return f"<figure><img alt='{escape(alt)}' src='{png_data_uri(png)}'/></figure>"


def page(title: str, sections: Sequence[tuple[str, str]], subtitle: str = "") -> str:
    """A complete HTML document: a title, an optional subtitle and (heading, html) sections."""
    body = "\n".join(
        (f"<h2>{escape(heading)}</h2>\n" if heading else "") + content
        for heading, content in sections
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p class="note">{escape(subtitle)}{" · " if subtitle else ""}generated {generated}</p>
{body}
</body></html>
"""
