"""Replay the real Online Retail II history month by month, as if it arrived live.

``start --as-of 2011-01-01`` cuts the bundled archive at the as-of date (the raw asset reads
``{"as_of": ...}`` from the replay state file) and clears landed files; each ``next`` drops the
following month's *real* events into the landing folder as ``retail_events_YYYY-MM.parquet``,
where the new-data sensor validates, accepts and ingests it. ``reset`` returns to full history.

The state file also carries ``next_month`` (replay progress) and ``session`` (changes on every
start/reset so the sensor re-ingests identical files after a restart instead of treating them
as duplicates of the previous replay).

Usage::

    python -m churn_assets.replay start --as-of 2011-01-01
    python -m churn_assets.replay next [--months N]
    python -m churn_assets.replay status
    python -m churn_assets.replay reset
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import polars as pl

from churn_assets.lib.months import month_after
from churn_assets.settings import Settings, get_settings

LANDED_PATTERN = "retail_events_*.parquet"


def landed_file_name(month: date) -> str:
    return f"retail_events_{month:%Y-%m}.parquet"


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


def read_state(settings: Settings) -> ReplayState | None:
    """The current replay, or None when the platform runs on the full history."""
    path = settings.replay_state_file
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


def archive_bounds(settings: Settings) -> tuple[datetime, datetime]:
    row = (
        pl.scan_parquet(settings.retail_parquet)
        .select(pl.col("invoice_ts").min().alias("lo"), pl.col("invoice_ts").max().alias("hi"))
        .collect()
        .row(0)
    )
    return row[0], row[1]


def _clear_landed(settings: Settings) -> list[Path]:
    """Remove replayed months from the landing and accepted folders (quarantine is kept)."""
    removed = []
    for folder in (settings.landing_dir, settings.accepted_dir):
        for path in sorted(folder.glob(LANDED_PATTERN)):
            path.unlink()
            removed.append(path)
    return removed


def start(settings: Settings, as_of: date) -> ReplayState:
    """Begin a replay: history before ``as_of`` is known, later months arrive via ``next``."""
    if as_of.day != 1:
        raise ValueError(f"--as-of must be the first day of a month, got {as_of}")
    first, last = archive_bounds(settings)
    if not first.date() < as_of <= last.date():
        raise ValueError(
            f"--as-of {as_of} is outside the archive ({first:%Y-%m-%d}..{last:%Y-%m-%d})"
        )
    settings.ensure_dirs()
    _clear_landed(settings)
    state = ReplayState(as_of=as_of, next_month=as_of, session=uuid.uuid4().hex[:12])
    _write_atomic(settings.replay_state_file, state.to_json())
    return state


def next_month(settings: Settings) -> Path | None:
    """Drop the next month's real events into the landing folder; None when history is done."""
    state = read_state(settings)
    if state is None:
        raise RuntimeError(
            "no replay in progress: run `python -m churn_assets.replay start --as-of YYYY-MM-01`"
        )
    _, last = archive_bounds(settings)
    if state.next_month > last.date():
        return None
    month_end = month_after(state.next_month)
    events = (
        pl.scan_parquet(settings.retail_parquet)
        .filter(
            (pl.col("invoice_ts") >= datetime.combine(state.next_month, datetime.min.time()))
            & (pl.col("invoice_ts") < datetime.combine(month_end, datetime.min.time()))
        )
        .collect()
    )
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    target = settings.landing_dir / landed_file_name(state.next_month)
    # Written under a dot-name and renamed, so the sensor never sees a half-written parquet.
    tmp = target.with_name(f".{target.name}.tmp")
    events.write_parquet(tmp)
    tmp.replace(target)
    _write_atomic(
        settings.replay_state_file,
        ReplayState(state.as_of, month_end, state.session).to_json(),
    )
    return target


def reset(settings: Settings) -> None:
    """Back to the full bundled history: no state file, no replayed months."""
    _clear_landed(settings)
    settings.replay_state_file.unlink(missing_ok=True)


def status(settings: Settings) -> dict[str, object]:
    state = read_state(settings)

    def names(folder: Path, pattern: str = "*.parquet") -> list[str]:
        return sorted(p.name for p in folder.glob(pattern)) if folder.exists() else []

    return {
        "mode": "replay" if state else "full history",
        "as_of": state.as_of.isoformat() if state else None,
        "next_month": state.next_month.isoformat() if state else None,
        "session": state.session if state else None,
        "waiting_in_landing": names(settings.landing_dir),
        "accepted": names(settings.accepted_dir),
        "quarantined": names(settings.quarantine_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m churn_assets.replay", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="cut history at --as-of and clear landed months")
    start_cmd.add_argument("--as-of", required=True, type=date.fromisoformat)
    next_cmd = commands.add_parser("next", help="drop the next month's real events into landing")
    next_cmd.add_argument("--months", type=int, default=1, help="how many months to drop")
    commands.add_parser("status", help="print the replay state and landed files")
    commands.add_parser("reset", help="return to the full history")
    args = parser.parse_args(argv)
    settings = get_settings()

    if args.command == "start":
        state = start(settings, args.as_of)
        print(f"replay started as of {state.as_of} (session {state.session}); next: `next`")
    elif args.command == "next":
        for _ in range(args.months):
            path = next_month(settings)
            if path is None:
                print("history fully replayed: nothing left to drop")
                break
            print(f"dropped {path}")
    elif args.command == "status":
        print(json.dumps(status(settings), indent=2))
    else:
        reset(settings)
        print("replay reset: full history; the landing sensor refreshes the raw tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
