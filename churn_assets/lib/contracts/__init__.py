"""Data contracts: a declared dataset's files are read, typed and validated in one step.

Reading and validating are one step because a file must be proven good *before* it may replace
the current table. Every failure raises :class:`ContractViolation`, whose message names the
file, the user's column and the first offending rows. The raw assets and the landing sensor call
:func:`read_file` and nothing else, so anything one door accepts the other accepts too.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from churn_assets.lib.contracts.events import events_columns, read_events
from churn_assets.lib.contracts.problems import ContractViolation, Problem
from churn_assets.lib.contracts.snapshot import LABEL, read_snapshot, snapshot_columns
from churn_assets.lib.datasets import DatasetSpec

__all__ = [
    "LABEL",
    "ContractViolation",
    "Problem",
    "events_columns",
    "read_file",
    "snapshot_columns",
]


def read_file(spec: DatasetSpec, path: Path, now: datetime | None = None) -> pl.DataFrame:
    """One file of a declared dataset in its raw table's shape, or :class:`ContractViolation`."""
    if spec.kind == "events":
        return read_events(spec, path, now)
    return read_snapshot(spec, path)
