"""What a load may do to the last good table: idempotence, overlap policy and the shrink guard.

An events table is a pure function of its files: the declared (archive) files, cut at the
replay's as-of date, then every accepted delivery in the order it was accepted. Each delivery's
rows are matched to the history by their content key, so events delivered again (in another
file, name, encoding or compression) change nothing and are reported as duplicates. New events
that fall inside the known history (at or before its newest event) are an overlap: refused, or,
where the dataset declares ``overlap_policy: replace_days``, the days they touch are replaced by
the delivery's rows, atomically with the rest of the load. Never a silent append.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from churn_assets.lib.contracts import ContractViolation, read_file
from churn_assets.lib.datasets import DatasetSpec


@dataclass(frozen=True)
class FileReport:
    """What one file contributed to a load."""

    file: str
    rows: int
    new_events: int
    duplicates_skipped: int
    replaced_days: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def assemble_events(
    spec: DatasetSpec,
    archive: list[Path],
    deliveries: list[Path],
    *,
    as_of: date | None = None,
    now: datetime | None = None,
) -> tuple[pl.DataFrame, list[FileReport]]:
    """The events table from its files, and a report per file; raises ContractViolation on a
    bad file or a refused overlap (naming the delivery)."""
    reports: list[FileReport] = []
    history: pl.DataFrame | None = None
    for path in archive:
        frame = read_file(spec, path, now)
        if as_of is not None:
            frame = frame.filter(pl.col("event_ts") < _midnight(as_of))
        if history is None:
            history, known = frame, 0
        else:
            seen = frame["event_id"].is_in(history["event_id"].implode())
            history, known = pl.concat([history, frame.filter(~seen)]), int(seen.sum())
        reports.append(FileReport(str(path), frame.height, frame.height - known, known))
    if history is None:
        raise ContractViolation(spec.name, ["the dataset declares no files"])
    for path in deliveries:
        history, report = apply_delivery(spec, history, read_file(spec, path, now), str(path))
        reports.append(report)
    return history, reports


def apply_delivery(
    spec: DatasetSpec, history: pl.DataFrame, delivery: pl.DataFrame, source: str
) -> tuple[pl.DataFrame, FileReport]:
    """Add one validated delivery to the history under the dataset's overlap policy."""
    if history.is_empty():
        return delivery, FileReport(source, delivery.height, delivery.height, 0)
    known = delivery["event_id"].is_in(history["event_id"].implode())
    fresh = delivery.filter(~known)
    duplicates = int(known.sum())
    if fresh.is_empty():
        return history, FileReport(source, delivery.height, 0, duplicates)
    newest = history["event_ts"].max()
    assert isinstance(newest, datetime)
    inside = fresh.filter(pl.col("event_ts") <= newest)
    if inside.is_empty():
        return pl.concat([history, fresh]), FileReport(
            source, delivery.height, fresh.height, duplicates
        )
    days = sorted(set(inside["event_ts"].dt.date().to_list()))
    if spec.ev.overlap_policy == "refuse":
        raise ContractViolation(
            source,
            [
                f"overlaps the loaded history: {inside.height} new events on {len(days)} day(s) "
                f"{days[0]} .. {days[-1]} are at or before its newest event ({newest}) and are not "
                "in it yet; the dataset's overlap_policy is 'refuse' (declare 'replace_days' to "
                "replace those days with this delivery)"
            ],
        )
    on_days = pl.col("event_ts").dt.date().is_in(days)
    replaced = pl.concat(
        [history.filter(~on_days), delivery.filter(on_days), fresh.filter(~on_days)]
    ).unique("event_id", keep="first", maintain_order=True)
    report = FileReport(
        source,
        delivery.height,
        replaced.height - history.height,
        duplicates,
        [d.isoformat() for d in days],
    )
    return replaced, report


def shrink_refusal(previous_rows: int | None, new_rows: int, min_share: float) -> str | None:
    """Why a load that replaces ``previous_rows`` by ``new_rows`` must not happen, else None.

    Zero rows are never a valid table. Below ``min_share`` of the last good table the load is
    almost always a truncated or wrong file, so it needs the run config's explicit consent.
    """
    if new_rows == 0:
        return "the new table would have 0 rows: refused (an empty input is never a valid load)"
    if previous_rows and new_rows < min_share * previous_rows:
        return (
            f"the new table would have {new_rows:,} rows, {new_rows / previous_rows:.1%} of the "
            f"last good table's {previous_rows:,} (guard: {min_share:.0%}); refused unless the "
            "run config sets allow_shrink: true"
        )
    return None
