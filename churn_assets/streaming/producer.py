"""Publishing events to a dataset's stream, after the same contract as the batch load.

:func:`validate_rows` runs the dataset's contract (``read_file``: types, required values,
declared rules, event types, content keys) on rows in the user's own shape and, instead of
refusing the whole delivery as the batch load must, separates the rows the contract names:
those go to the dead-letter stream with the contract's words, the others are published. The
content key of a good row is the one the batch computes for it, so the stream and the raw
table name every event the same way.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from churn_assets.lib.contracts import ContractViolation, read_file
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.events import encode

if TYPE_CHECKING:
    import redis

EVENTS_MAXLEN = 5_000_000
"""Approximate cap on the events stream. A hand-over replays the streamed events at or after
the batch's as-of from it, so it must hold at least the events since the last batch build."""
PIPELINE_CHUNK = 1000
MAX_PASSES = 5
"""A contract stops at its first failing stage (parsing, then rules), so a file with several
kinds of bad rows needs a pass per kind."""


@dataclass(frozen=True)
class DeadRow:
    """A row the contract refused, in the user's shape, with the contract's reasons."""

    row: dict[str, object]
    reason: str


def validate_rows(
    spec: DatasetSpec, frame: pl.DataFrame, name: str
) -> tuple[pl.DataFrame, list[DeadRow]]:
    """Rows of ``frame`` (the user's columns) through the contract, one row at a time in
    effect: the canonical rows that pass (``source_file`` = ``name``) and the refused ones.

    Raises :class:`ContractViolation` for problems that are not about rows (a missing
    column), as the batch load does.
    """
    suffix = spec.file_format(spec.source_files()[0])
    dead: list[DeadRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, f"{name}.{suffix}")
        for _ in range(MAX_PASSES):
            if frame.is_empty():
                return pl.DataFrame(), dead
            if suffix == "csv":
                frame.write_csv(path)
            else:
                frame.write_parquet(path)
            try:
                return read_file(spec, path).with_columns(source_file=pl.lit(name)), dead
            except ContractViolation as exc:
                reasons: dict[int, list[str]] = {}
                for problem in exc.details:
                    if not problem.rows:
                        raise
                    for row in problem.rows:  # 1-based data rows
                        reasons.setdefault(row - 1, []).append(
                            f"{problem.column} failed {problem.check}"
                        )
                if not reasons:
                    raise
                rows = frame.to_dicts()
                dead += [DeadRow(rows[i], "; ".join(reasons[i])) for i in sorted(reasons)]
                frame = frame.filter(~pl.int_range(pl.len()).is_in(list(reasons)))
    raise ContractViolation(name, [f"still failing after {MAX_PASSES} passes"])


def entries(frame: pl.DataFrame) -> Iterator[dict[str, str]]:
    """Canonical rows in event-time order as stream entry fields."""
    if frame.is_empty():
        return
    for row in frame.sort("event_ts", maintain_order=True).iter_rows(named=True):
        yield encode(row)


def publish(
    client: redis.Redis,
    dataset: str,
    fields: Iterable[dict[str, str]],
    rate: float | None = None,
) -> int:
    """XADD every entry to the events stream, pipelined, at ``rate`` entries per second
    (open loop: each entry is due at ``start + i / rate``) or as fast as Redis takes them."""
    key = store.events_key(dataset)
    pipe = client.pipeline(transaction=False)
    started, sent = time.perf_counter(), 0
    for entry in fields:
        if rate is not None:
            delay = started + sent / rate - time.perf_counter()
            if delay > 0:
                pipe.execute()
                time.sleep(delay)
        pipe.xadd(key, entry, maxlen=EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        sent += 1
        if len(pipe) >= PIPELINE_CHUNK:
            pipe.execute()
    pipe.execute()
    return sent


def dead_letter(client: redis.Redis, dataset: str, dead: Iterable[DeadRow]) -> int:
    """Send refused rows to the dead-letter stream: the row as text and the reason."""
    pipe = client.pipeline(transaction=False)
    for item in dead:
        fields = encode(item.row) | {"reason": item.reason, "source": "producer"}
        pipe.xadd(store.dead_key(dataset), fields)  # type: ignore[arg-type]
    return len(pipe.execute())
