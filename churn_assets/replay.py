"""Replay an events dataset's real history month by month, as if it arrived live.

``start --as-of 2011-01-01`` cuts the dataset's declared files at the as-of date (the raw asset
reads the dataset's replay state) and clears replayed deliveries; each ``next`` drops the
following month's *real* rows, in the user's own file format, into the dataset's landing folder
as ``<dataset>_events_YYYY-MM.parquet``, where the landing sensor validates, accepts and ingests
it. ``reset`` returns to the full history.

``stream --month 2011-11`` publishes that month's real events, one entry each in event-time
order, to the dataset's Redis stream ``churn:<dataset>:events`` (after the contract, row by
row: refused rows go to ``churn:<dataset>:dead`` with the reason), for the stream worker
(``python -m churn_assets.streaming``). Unless told otherwise it first starts the online state
at the month's first day from the batch store, when the state is missing or starts later.

The state file also carries ``next_month`` (progress) and ``session`` (changes on every
start/reset so the landing sensor reloads the raw table for the new history).

Usage::

    python -m churn_assets.replay start --as-of 2011-01-01 [--dataset retail]
    python -m churn_assets.replay next [--months N]
    python -m churn_assets.replay status
    python -m churn_assets.replay reset
    python -m churn_assets.replay stream --month 2011-11 [--rate 1000] [--bootstrap always]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl
import redis

from churn_assets.lib import landing
from churn_assets.lib.contracts.events import event_times
from churn_assets.lib.contracts.files import read_table
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.months import month_after
from churn_assets.lib.stream import state as stream_state
from churn_assets.settings import ChurnSettings, settings_from_env
from churn_assets.streaming import producer
from churn_assets.streaming.bootstrap import bootstrap


def landed_file_name(spec: DatasetSpec, month: date) -> str:
    return f"{spec.name}_events_{month:%Y-%m}.parquet"


@dataclass(frozen=True)
class ReplayState:
    as_of: date
    next_month: date
    session: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "as_of": self.as_of.isoformat(),
                "next_month": self.next_month.isoformat(),
                "session": self.session,
            },
            indent=2,
        )


def read_state(settings: ChurnSettings, dataset: str) -> ReplayState | None:
    """The dataset's current replay, or None when it runs on its full history."""
    path = settings.replay_state_file(dataset)
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    as_of = date.fromisoformat(raw["as_of"])
    return ReplayState(
        as_of=as_of,
        next_month=date.fromisoformat(raw.get("next_month", as_of.isoformat())),
        session=raw.get("session", "manual"),
    )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _archive(spec: DatasetSpec) -> tuple[pl.DataFrame, pl.Series]:
    """The declared files in the user's shape, and each row's event time."""
    frames = [read_table(p, spec.file_format(p)) for p in spec.source_files()]
    frame = pl.concat(frames, how="diagonal_relaxed")
    return frame, event_times(spec, frame)


def archive_bounds(spec: DatasetSpec) -> tuple[datetime, datetime]:
    _, times = _archive(spec)
    first, last = times.min(), times.max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    return first, last


def _pattern(spec: DatasetSpec) -> str:
    return f"{spec.name}_events_*.parquet"


def start(settings: ChurnSettings, spec: DatasetSpec, as_of: date) -> ReplayState:
    """Begin a replay: history before ``as_of`` is known, later months arrive via ``next``."""
    if spec.kind != "events":
        raise ValueError(f"{spec.name} is a snapshot dataset: only events can be replayed")
    if as_of.day != 1:
        raise ValueError(f"--as-of must be the first day of a month, got {as_of}")
    first, last = archive_bounds(spec)
    if not first.date() < as_of <= last.date():
        raise ValueError(
            f"--as-of {as_of} is outside the archive ({first:%Y-%m-%d}..{last:%Y-%m-%d})"
        )
    settings.ensure_dirs()
    landing.clear(settings.landing(spec.name), _pattern(spec))
    state = ReplayState(as_of=as_of, next_month=as_of, session=uuid.uuid4().hex[:12])
    _write_atomic(settings.replay_state_file(spec.name), state.to_json())
    return state


def next_month(settings: ChurnSettings, spec: DatasetSpec) -> Path | None:
    """Drop the next month's real rows into the landing folder; None when history is done."""
    state = read_state(settings, spec.name)
    if state is None:
        raise RuntimeError(
            "no replay in progress: run `python -m churn_assets.replay start --as-of YYYY-MM-01`"
        )
    frame, times = _archive(spec)
    last = times.max()
    assert isinstance(last, datetime)
    if state.next_month > last.date():
        return None
    month_end = month_after(state.next_month)
    window = (times >= datetime.combine(state.next_month, datetime.min.time())) & (
        times < datetime.combine(month_end, datetime.min.time())
    )
    folders = settings.landing(spec.name).ensure()
    target = folders.incoming / landed_file_name(spec, state.next_month)
    # Written under a dot-name and renamed, so the sensor never sees a half-written parquet.
    tmp = target.with_name(f".{target.name}.tmp")
    frame.filter(window).write_parquet(tmp)
    tmp.replace(target)
    _write_atomic(
        settings.replay_state_file(spec.name),
        ReplayState(state.as_of, month_end, state.session).to_json(),
    )
    return target


def reset(settings: ChurnSettings, spec: DatasetSpec) -> None:
    """Back to the full history: no state file, no replayed months."""
    landing.clear(settings.landing(spec.name), _pattern(spec))
    settings.replay_state_file(spec.name).unlink(missing_ok=True)


def status(settings: ChurnSettings, spec: DatasetSpec) -> dict[str, object]:
    state = read_state(settings, spec.name)
    folders = settings.landing(spec.name)

    def names(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.exists() else []

    return {
        "dataset": spec.name,
        "mode": "replay" if state else "full history",
        "as_of": state.as_of.isoformat() if state else None,
        "next_month": state.next_month.isoformat() if state else None,
        "session": state.session if state else None,
        "waiting_in_landing": names(folders.incoming),
        "pending": names(folders.pending),
        "accepted": [p.name for p in landing.accepted(folders)],
        "quarantined": names(folders.quarantine),
    }


@dataclass(frozen=True)
class StreamReport:
    month: date
    rows: int
    published: int
    dead_letters: int
    bootstrapped: str | None
    seconds: float

    def __str__(self) -> str:
        start = f"; online state started at {self.bootstrapped}" if self.bootstrapped else ""
        return (
            f"{self.month:%Y-%m}: {self.published:,} of {self.rows:,} events published "
            f"({self.published / max(self.seconds, 1e-9):,.0f}/s), "
            f"{self.dead_letters} dead letters{start}"
        )


def stream_month(
    settings: ChurnSettings,
    spec: DatasetSpec,
    month: date,
    rate: float | None = None,
    start_state: str = "auto",
) -> StreamReport:
    """Publish the real events of ``month`` to the dataset's events stream (see the module
    docstring). ``start_state``: ``auto`` (when missing or starting after the month),
    ``always`` or ``never`` rebuild the online state from the batch store first."""
    if spec.kind != "events":
        raise ValueError(f"{spec.name} is a snapshot dataset: only events can be streamed")
    started = time.perf_counter()
    frame, times = _archive(spec)
    first = datetime.combine(month.replace(day=1), datetime.min.time())
    end = datetime.combine(month_after(first.date()), datetime.min.time())
    rows = frame.filter((times >= first) & (times < end))
    good, dead = producer.validate_rows(
        spec, rows, landed_file_name(spec, first.date()).removesuffix(".parquet")
    )
    client = redis.Redis.from_url(settings.redis_url)
    meta = stream_state.current_meta(client, spec.name)
    fresh = start_state == "always" or (
        start_state == "auto" and (meta is None or meta.as_of > first.date())
    )
    if fresh:
        bootstrap(client, spec, settings.duckdb_path, first.date())
    dead_letters = producer.dead_letter(client, spec.name, dead)
    published = producer.publish(client, spec.name, producer.entries(good), rate)
    return StreamReport(
        month=first.date(),
        rows=rows.height,
        published=published,
        dead_letters=dead_letters,
        bootstrapped=first.date().isoformat() if fresh else None,
        seconds=time.perf_counter() - started,
    )


def events_dataset(name: str | None) -> DatasetSpec:
    """The named dataset, or the only (first) declared events dataset."""
    specs = load_declarations()
    if name:
        if name not in specs:
            raise SystemExit(f"unknown dataset {name!r}; declared: {sorted(specs)}")
        return specs[name]
    events = [s for s in specs.values() if s.kind == "events"]
    if not events:
        raise SystemExit("no events dataset is declared")
    return events[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m churn_assets.replay", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", help="events dataset to replay (default: the first declared)")
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="cut history at --as-of and clear landed months")
    start_cmd.add_argument("--as-of", required=True, type=date.fromisoformat)
    next_cmd = commands.add_parser("next", help="drop the next month's real events into landing")
    next_cmd.add_argument("--months", type=int, default=1, help="how many months to drop")
    commands.add_parser("status", help="print the replay state and landed files")
    commands.add_parser("reset", help="return to the full history")
    stream_cmd = commands.add_parser(
        "stream", help="publish a month's real events to the dataset's Redis stream"
    )
    stream_cmd.add_argument(
        "--month", required=True, type=lambda text: date.fromisoformat(f"{text}-01")
    )
    stream_cmd.add_argument("--rate", type=float, help="events per second (default: no limit)")
    # also accepted after the subcommand, as the other commands take it before
    stream_cmd.add_argument("--dataset", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    stream_cmd.add_argument(
        "--bootstrap",
        choices=("auto", "always", "never"),
        default="auto",
        help="start the online state at the month from the batch store (auto: when it is "
        "missing or starts after the month)",
    )
    args = parser.parse_args(argv)
    settings = settings_from_env()
    spec = events_dataset(args.dataset)

    if args.command == "start":
        state = start(settings, spec, args.as_of)
        print(f"{spec.name}: replay started as of {state.as_of} (session {state.session})")
    elif args.command == "next":
        for _ in range(args.months):
            path = next_month(settings, spec)
            if path is None:
                print("history fully replayed: nothing left to drop")
                break
            print(f"dropped {path}")
    elif args.command == "status":
        print(json.dumps(status(settings, spec), indent=2))
    elif args.command == "stream":
        print(stream_month(settings, spec, args.month, args.rate, args.bootstrap))
    else:
        reset(settings, spec)
        print(f"{spec.name}: replay reset to the full history; the landing sensor reloads it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
