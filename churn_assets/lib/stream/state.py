"""The online tile state of an events dataset in Redis: versioned, bootstrapped from the batch
store, updated exactly once per event, handed over to the next batch atomically.

Key layout (``{ds}`` the dataset, ``{v}`` a state version, an integer per dataset)::

    churn:{ds}:events                 stream of canonical events (the producer writes it)
    churn:{ds}:dead                   dead letters: entries that are not valid events, with why
    churn:{ds}:scores                 the worker's scores
    churn:{ds}:stream:stats           counters and the last processed event (hash)
    churn:{ds}:stream:consumers       heartbeat and throughput of every worker (hash)
    churn:{ds}:state:current          the live state version (pointer)
    churn:{ds}:state:{v}:meta         as-of date, first day of the data, feature-set version
    churn:{ds}:state:{v}:c:{customer} the customer's tiles and product days (hash)
    churn:{ds}:state:{v}:o:{customer} purchase orders already counted, ``day|order`` (set)
    churn:{ds}:state:{v}:applied      ids of the events applied to this version (set)
    churn:{ds}:state:{v}:customers    every customer of this version (set)

**Boundary.** A version holds the batch's tiles of days before its ``as_of`` (a midnight) and
the stream's events at or after it. An older event belongs to the batch, which has it (or
will, at its next build): the worker skips it, so nothing is counted twice.

**Exactly-once effect.** :data:`_APPLY` records an event id and adds the event to the tiles in
one script, and skips ids already recorded, so a redelivered event changes nothing. It also
checks that its version is still live: a worker that applied to a retired version would lose
the event, so it is told to reload and retry instead.

**Hand-over** (:func:`hand_over`): a new batch build becomes the new truth without a pause.
Its tiles are written under a fresh version, the events already in the stream at or after its
as-of are replayed into it, the pointer flips (compare-and-set), and the events applied to the
old version in between are replayed once more: the replay and the workers may both apply an
event to the new version, and the applied set keeps exactly one. The old version expires after
a grace period.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl

from churn_assets.lib.stream.events import (
    MalformedEvent,
    StreamEvent,
    day_number,
    decode,
    to_milli,
)
from churn_assets.lib.stream.tiles import (
    MEASURES,
    CustomerState,
    product_field,
    tile_fields,
)

if TYPE_CHECKING:
    import redis

GROUP = "features"
"""The consumer group of the feature workers on the events stream."""
RETIRED_TTL_SECONDS = 600
READ_CHUNK = 2000
REPLAY_BATCH = 500


def events_key(dataset: str) -> str:
    return f"churn:{dataset}:events"


def dead_key(dataset: str) -> str:
    return f"churn:{dataset}:dead"


def scores_key(dataset: str) -> str:
    return f"churn:{dataset}:scores"


def stats_key(dataset: str) -> str:
    return f"churn:{dataset}:stream:stats"


def consumers_key(dataset: str) -> str:
    return f"churn:{dataset}:stream:consumers"


def _state_prefix(dataset: str) -> str:
    return f"churn:{dataset}:state:"


def pointer_key(dataset: str) -> str:
    return f"{_state_prefix(dataset)}current"


def version_base(dataset: str, version: str) -> str:
    return f"{_state_prefix(dataset)}{version}:"


def customer_key(dataset: str, version: str, customer_id: str) -> str:
    return f"{version_base(dataset, version)}c:{customer_id}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# One call per batch of events. KEYS: pointer, stats. ARGV: version, "1" to require that the
# version is live, then 7 fields per event: id, customer, day, kind (p = purchase, r = return
# or cancellation), order id, product id ("" for none), amount delta in thousandths.
# Every applied event also increments the customer's sequence (field "#"). Returns {1, flags,
# customer, HGETALL, customer, HGETALL, ...} (flags: "1" applied, "0" a duplicate, per event)
# or {0, live version} when the version was retired meanwhile.
_APPLY = """
local version = ARGV[1]
local live = redis.call('GET', KEYS[1])
if ARGV[2] == '1' and live ~= version then return {0, live or ''} end
-- the version's prefix: the pointer key churn:<ds>:state:current without "current"
local base = string.sub(KEYS[1], 1, -8) .. version .. ':'
local applied_key, customers_key = base .. 'applied', base .. 'customers'
local flags, touched, order = {}, {}, {}
local applied, duplicates = 0, 0
for i = 3, #ARGV, 7 do
  local customer, day = ARGV[i + 1], ARGV[i + 2]
  local tiles = base .. 'c:' .. customer
  if redis.call('SADD', applied_key, ARGV[i]) == 1 then
    if ARGV[i + 3] == 'p' then
      if redis.call('SADD', base .. 'o:' .. customer, day .. '|' .. ARGV[i + 4]) == 1 then
        redis.call('HINCRBY', tiles, 'o' .. day, 1)
      end
      redis.call('HINCRBY', tiles, 'l' .. day, 1)
      redis.call('HINCRBY', tiles, 'r' .. day, ARGV[i + 6])
      if ARGV[i + 5] ~= '' then redis.call('HSET', tiles, 'p' .. day .. ':' .. ARGV[i + 5], 1) end
    else
      redis.call('HINCRBY', tiles, 'n' .. day, 1)
      redis.call('HINCRBY', tiles, 'v' .. day, ARGV[i + 6])
    end
    redis.call('HINCRBY', tiles, '#', 1)
    redis.call('SADD', customers_key, customer)
    flags[#flags + 1] = '1'
    applied = applied + 1
  else
    flags[#flags + 1] = '0'
    duplicates = duplicates + 1
  end
  if not touched[customer] then
    touched[customer] = true
    order[#order + 1] = customer
  end
end
if applied > 0 then redis.call('HINCRBY', KEYS[2], 'applied', applied) end
if duplicates > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', duplicates) end
local out = {1, table.concat(flags)}
for _, customer in ipairs(order) do
  out[#out + 1] = customer
  out[#out + 1] = redis.call('HGETALL', base .. 'c:' .. customer)
end
return out
"""

# Flip the pointer only from the version the caller replaced (empty: none yet).
_FLIP = """
local live = redis.call('GET', KEYS[1]) or ''
if live ~= ARGV[1] then return live end
redis.call('SET', KEYS[1], ARGV[2])
return ARGV[2]
"""


class StateNotFound(LookupError):
    """No online state was bootstrapped for the dataset yet."""


class StaleHandOver(RuntimeError):
    """Another hand-over published a state while this one was being written."""


@dataclass(frozen=True)
class StateMeta:
    """What a state version holds: tiles before ``as_of`` from the batch, events from then."""

    dataset: str
    version: str
    as_of: date
    first_day: date
    feature_set_version: str
    source: str
    created_at: datetime

    @property
    def as_of_day(self) -> int:
        return day_number(self.as_of)

    def to_hash(self) -> dict[str, str]:
        return {
            "dataset": self.dataset,
            "version": self.version,
            "as_of": self.as_of.isoformat(),
            "first_day": self.first_day.isoformat(),
            "feature_set_version": self.feature_set_version,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> StateMeta:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return cls(
            dataset=fields["dataset"],
            version=fields["version"],
            as_of=date.fromisoformat(fields["as_of"]),
            first_day=date.fromisoformat(fields["first_day"]),
            feature_set_version=fields["feature_set_version"],
            source=fields["source"],
            created_at=datetime.fromisoformat(fields["created_at"]),
        )


@dataclass(frozen=True)
class BatchState:
    """The offline tiles a state starts from (see ``churn_assets.lib.stream.batch``).

    ``tiles``: customer_id, day (day number), the five measures (money in thousandths);
    ``products``: customer_id, day, product_id, for the days a window can still reach.
    """

    as_of: date
    first_day: date
    tiles: pl.DataFrame
    products: pl.DataFrame
    source: str


@dataclass(frozen=True)
class Applied:
    """What one apply call did: per event whether it was new, and the touched customers' state
    right after (read in the same script, so it includes exactly these events)."""

    new: list[bool]
    states: dict[str, CustomerState]


class VersionMoved(RuntimeError):
    """The state version was retired by a hand-over: reload the live one and retry."""


def current_meta(redis: redis.Redis, dataset: str) -> StateMeta | None:
    version = redis.get(pointer_key(dataset))
    if version is None:
        return None
    raw = redis.hgetall(f"{version_base(dataset, _text(version))}meta")
    return StateMeta.from_hash(raw) if raw else None


def live_meta(redis: redis.Redis, dataset: str) -> StateMeta:
    meta = current_meta(redis, dataset)
    if meta is None:
        raise StateNotFound(
            f"no online state for {dataset!r}: bootstrap it from the batch store first "
            "(python -m churn_assets.streaming --bootstrap, or replay stream)"
        )
    return meta


def apply_events(
    redis: redis.Redis,
    dataset: str,
    version: str,
    events: Sequence[StreamEvent],
    *,
    must_be_live: bool = True,
) -> Applied:
    """Record and add ``events`` (already past the staging rules and the as-of boundary) in
    one atomic script; :class:`VersionMoved` if ``version`` is no longer live."""
    args: list[str | int] = [version, "1" if must_be_live else "0"]
    for event in events:
        milli = to_milli(event.amount)
        args += [
            event.event_id,
            event.customer_id or "",
            event.day,
            "p" if event.is_purchase else "r",
            event.order_id or "",
            event.product_id or "",
            milli if event.is_purchase else -milli,
        ]
    reply = redis.eval(_APPLY, 2, pointer_key(dataset), stats_key(dataset), *args)
    if reply[0] == 0:
        raise VersionMoved(f"{dataset}: state v{version} was replaced by v{_text(reply[1])}")
    flags = _text(reply[1])
    states = {
        _text(reply[i]): CustomerState.from_hash(reply[i + 1]) for i in range(2, len(reply), 2)
    }
    return Applied([flag == "1" for flag in flags], states)


def read_states(
    redis: redis.Redis, dataset: str, version: str, customer_ids: Sequence[str]
) -> dict[str, CustomerState]:
    """The stored state of ``customer_ids`` (pipelined in chunks); absent ones are empty."""
    out: dict[str, CustomerState] = {}
    for start in range(0, len(customer_ids), READ_CHUNK):
        chunk = customer_ids[start : start + READ_CHUNK]
        pipe = redis.pipeline(transaction=False)
        for customer_id in chunk:
            pipe.hgetall(customer_key(dataset, version, customer_id))
        for customer_id, reply in zip(chunk, pipe.execute(), strict=True):
            out[customer_id] = CustomerState.from_hash(reply)
    return out


def customers(redis: redis.Redis, dataset: str, version: str) -> list[str]:
    return sorted(_text(c) for c in redis.smembers(f"{version_base(dataset, version)}customers"))


# --------------------------------------------------------------------------------------------
# Bootstrap and hand-over
# --------------------------------------------------------------------------------------------


def write_state(
    redis: redis.Redis, dataset: str, batch: BatchState, feature_set_version: str
) -> StateMeta:
    """Write the batch's tiles under a fresh, unpublished version (see :func:`publish`)."""
    version = str(redis.incr(f"{_state_prefix(dataset)}seq"))
    meta = StateMeta(
        dataset=dataset,
        version=version,
        as_of=batch.as_of,
        first_day=batch.first_day,
        feature_set_version=feature_set_version,
        source=batch.source,
        created_at=datetime.now(UTC),
    )
    fields: dict[str, dict[str, int]] = {}
    measures = [f"m{i}" for i in range(len(MEASURES))]
    for customer_id, day, *tile in batch.tiles.select("customer_id", "day", *measures).iter_rows():
        fields.setdefault(customer_id, {}).update(tile_fields(day, tile))
    for customer_id, day, product_id in batch.products.select(
        "customer_id", "day", "product_id"
    ).iter_rows():
        fields.setdefault(customer_id, {})[product_field(day, product_id)] = 1
    base = version_base(dataset, version)
    pipe = redis.pipeline(transaction=False)
    for customer_id, mapping in fields.items():
        pipe.hset(f"{base}c:{customer_id}", mapping=mapping)  # type: ignore[arg-type]
        if len(pipe) >= READ_CHUNK:
            pipe.execute()
    for start in range(0, len(fields), READ_CHUNK):
        pipe.sadd(f"{base}customers", *list(fields)[start : start + READ_CHUNK])
    pipe.hset(f"{base}meta", mapping=meta.to_hash())  # type: ignore[arg-type]
    pipe.execute()
    return meta


def publish(redis: redis.Redis, dataset: str, version: str, replaces: str | None) -> bool:
    """Make ``version`` live if the live one is still ``replaces`` (None: no state yet)."""
    live = redis.eval(_FLIP, 1, pointer_key(dataset), replaces or "", version)
    return _text(live) == version


def retire(redis: redis.Redis, dataset: str, version: str, ttl_seconds: int) -> None:
    """Let a replaced version expire: workers that still hold it get VersionMoved at once,
    readers that resolved it keep a consistent view for ``ttl_seconds``."""
    pipe = redis.pipeline(transaction=False)
    for key in redis.scan_iter(match=f"{version_base(dataset, version)}*", count=1000):
        pipe.expire(key, ttl_seconds, nx=True)
        if len(pipe) >= 5000:
            pipe.execute()
    pipe.execute()


def stream_events(
    redis: redis.Redis, dataset: str, after: str = "-"
) -> Iterator[tuple[str, StreamEvent | None]]:
    """Every entry of the events stream after entry id ``after`` (``-``: from the start), in
    order, decoded; None for an entry that is not a valid event (the worker dead-letters it)."""
    start = after if after == "-" else f"({after}"
    while True:
        entries: Any = redis.xrange(events_key(dataset), min=start, max="+", count=READ_CHUNK)
        for entry_id, fields in entries:
            try:
                yield _text(entry_id), decode(fields)
            except MalformedEvent:
                yield _text(entry_id), None
        if len(entries) < READ_CHUNK:
            return
        start = f"({_text(entries[-1][0])}"


def replay(
    redis: redis.Redis, meta: StateMeta, *, after: str = "-", must_be_live: bool
) -> tuple[int, str, set[str]]:
    """Apply the events of the stream at or after the version's as-of (from entry ``after``)
    to it: the events applied, the last entry id read, and the customers touched."""
    applied, last = 0, after
    touched: set[str] = set()
    batch: list[StreamEvent] = []

    def flush() -> int:
        if not batch:
            return 0
        result = apply_events(redis, meta.dataset, meta.version, batch, must_be_live=must_be_live)
        touched.update(e.customer_id or "" for e in batch)
        batch.clear()
        return sum(result.new)

    for entry_id, event in stream_events(redis, meta.dataset, after):
        last = entry_id
        if counts(event, meta):
            assert event is not None
            batch.append(event)
            if len(batch) >= REPLAY_BATCH:
                applied += flush()
    applied += flush()
    return applied, last, touched


def counts(event: StreamEvent | None, meta: StateMeta) -> bool:
    """Whether an event changes this version's features: valid, kept by staging, and at or
    after its as-of (older events are the batch's)."""
    return event is not None and event.drop_reason() is None and event.day >= meta.as_of_day


@dataclass(frozen=True)
class HandOver:
    meta: StateMeta
    replaced: str | None
    replayed: int
    customers: int
    touched: frozenset[str]


def hand_over(
    redis: redis.Redis,
    dataset: str,
    batch: BatchState,
    feature_set_version: str,
    ttl_seconds: int = RETIRED_TTL_SECONDS,
) -> HandOver:
    """Make ``batch`` the new truth of the online state, carrying over the streamed events at
    or after its as-of; atomic for readers and workers (see the module docstring)."""
    previous = current_meta(redis, dataset)
    meta = write_state(redis, dataset, batch, feature_set_version)
    replayed, last, touched = replay(redis, meta, must_be_live=False)
    if not publish(redis, dataset, meta.version, previous.version if previous else None):
        retire(redis, dataset, meta.version, 0)
        raise StaleHandOver(f"{dataset}: another state was published during the hand-over")
    late, _, late_touched = replay(redis, meta, after=last, must_be_live=True)
    if previous is not None:
        retire(redis, dataset, previous.version, ttl_seconds)
    return HandOver(
        meta=meta,
        replaced=None if previous is None else previous.version,
        replayed=replayed + late,
        customers=batch.tiles["customer_id"].n_unique(),
        touched=frozenset(touched | late_touched),
    )
