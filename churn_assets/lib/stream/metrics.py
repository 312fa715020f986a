"""How a dataset's stream is doing, read from Redis: what the platform shows and checks.

Lag is what the consumer group has not finished: entries never delivered (``XINFO GROUPS``
``lag``, Redis >= 7) plus entries delivered and not yet acknowledged (pending). Throughput is
the sum of the live workers' own rates (each reports events per second over its last seconds
in its heartbeat); a worker silent for ``LIVE_SECONDS`` is not counted as live.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from churn_assets.lib.stream import state as store

if TYPE_CHECKING:
    import redis

LIVE_SECONDS = 60.0


@dataclass(frozen=True)
class StreamMetrics:
    events_in_stream: int
    lag: int
    pending: int
    dead_letters: int
    scores_in_stream: int
    applied: int
    duplicates: int
    dropped: int
    before_state: int
    scored: int
    superseded: int
    alerts: int
    live_consumers: int
    events_per_second: float
    last_event_id: str | None
    last_event_ts: str | None
    state_version: str | None
    state_as_of: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(stats: dict[bytes, bytes], name: str) -> int:
    return int(stats.get(name.encode(), b"0"))


def _text(stats: dict[bytes, bytes], name: str) -> str | None:
    value = stats.get(name.encode())
    return None if value is None else value.decode()


def read_metrics(client: redis.Redis, dataset: str) -> StreamMetrics:
    events = store.events_key(dataset)
    exists = bool(client.exists(events))
    groups: Any = client.xinfo_groups(events) if exists else []
    group = next((g for g in groups if g["name"] in (store.GROUP, store.GROUP.encode())), None)
    length = int(client.xlen(events)) if exists else 0
    # No group yet: nothing has been delivered, the whole stream is lag.
    lag = length if group is None else int(group["lag"] or 0)
    pending = 0 if group is None else int(group["pending"])
    stats: Any = client.hgetall(store.stats_key(dataset))
    now = time.time()
    heartbeats = [json.loads(v) for v in client.hvals(store.consumers_key(dataset))]  # type: ignore[union-attr]
    live = [h for h in heartbeats if now - h["seen_at"] <= LIVE_SECONDS]
    meta = store.current_meta(client, dataset)
    return StreamMetrics(
        events_in_stream=length,
        lag=lag + pending,
        pending=pending,
        dead_letters=int(client.xlen(store.dead_key(dataset))),
        scores_in_stream=int(client.xlen(store.scores_key(dataset))),
        applied=_int(stats, "applied"),
        duplicates=_int(stats, "duplicates"),
        dropped=_int(stats, "dropped"),
        before_state=_int(stats, "before_state"),
        scored=_int(stats, "scored"),
        superseded=_int(stats, "superseded"),
        alerts=_int(stats, "alerts"),
        live_consumers=len(live),
        events_per_second=round(sum(h["events_per_second"] for h in live), 1),
        last_event_id=_text(stats, "last_event_id"),
        last_event_ts=_text(stats, "last_event_ts"),
        state_version=None if meta is None else meta.version,
        state_as_of=None if meta is None else meta.as_of.isoformat(),
    )
