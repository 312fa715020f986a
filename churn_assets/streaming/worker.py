"""The stream worker: events in, exact online features and champion scores out.

One batch of entries (``XREADGROUP COUNT n``) takes four round trips to Redis:

1. **apply**: one script records every new event id and adds the event to its customer's
   tiles and sequence, atomically, and returns the touched customers' state
   (``lib.stream.state``);
2. **derive and score** in the worker: each touched customer's features at T, the observation
   date after its newest event in the batch (features "as of now": every event seen before T),
   scored by the champion through the serving scoring core (probability, risk decile, top-3
   reasons);
3. **check freshness**: WATCH the customers' state and read, in one script, their sequences
   (a customer another worker has applied newer events to since step 1 is superseded: that
   worker's score covers these events too), their previous probabilities (threshold alerts)
   and the online store's pointer;
4. **commit**: one MULTI/EXEC appends one score entry per fresh customer (naming the events
   and stream entries it reflects), writes their new feature rows into the online store's live
   snapshot (so the API scores them as the stream does), the dead letters, the counters and
   the heartbeat, and acknowledges the entries; a watched change in between retries 3-4.

A crash before step 4 leaves the entries pending: the restarted consumer re-reads them first,
step 1 finds their ids recorded and changes nothing, and steps 2-4 run again: features are
exactly-once, dead letters appear once per entry, and each customer's newest score covers every
event applied to it. Alerts go out before the commit, so a crash in between may repeat one
(at-least-once) but never loses one.

Entries a dead consumer held are claimed with XAUTOCLAIM once idle for ``claim_idle_ms``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import polars as pl
import redis

from churn_assets.lib import online_store
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.months import month_after
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.events import MalformedEvent, StreamEvent, decode
from churn_assets.lib.stream.tiles import CustomerState, Knobs, derive_frame
from churn_assets.resources import AlertNotifier
from churn_assets.serving.models import ServedModel, load_served_model
from churn_assets.serving.scoring import FeatureRows
from churn_assets.streaming.config import StreamConfig

log = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes] | None]
ALERT_EVENT = "stream_risk_threshold"
RATE_WINDOW_SECONDS = 10.0

# KEYS: n customer state keys, the risk hash, the online store's pointer; ARGV: the n customer
# ids. Returns the n sequences, the n previous probabilities and the pointer.
_FRESHNESS = """
local n = #ARGV
local out = {}
for i = 1, n do out[i] = redis.call('HGET', KEYS[i], '#') or '0' end
for i = 1, n do out[n + i] = redis.call('HGET', KEYS[n + 1], ARGV[i]) end
out[2 * n + 1] = redis.call('GET', KEYS[n + 2])
return out
"""


def risk_key(dataset: str) -> str:
    """Each customer's last streamed probability: alerts fire on crossing the threshold."""
    return f"churn:{dataset}:stream:risk"


def observation_after(moment: datetime) -> date:
    """The first observation date (month start) T with ``moment < T``."""
    return month_after(moment.date())


class ChampionSource(Protocol):
    """Where the worker's model comes from: the registry in service, a fixed model in tests."""

    def version(self) -> str | None: ...

    def load(self, version: str) -> ServedModel: ...


@dataclass(frozen=True)
class RegistryChampion:
    """The registry's ``@champion`` of a dataset, warmed up as the API serves it."""

    dataset: str

    def version(self) -> str | None:
        return registry.champion_version(self.dataset)

    def load(self, version: str) -> ServedModel:
        return load_served_model(self.dataset, version)


@dataclass
class Outcome:
    """What one batch did besides applying events (the script counts those): the counters the
    commit adds to the stream's stats."""

    dropped: int = 0
    before_state: int = 0
    dead: int = 0
    scored: int = 0
    superseded: int = 0
    alerts: int = 0


@dataclass
class _Rate:
    """Events per second over the last few seconds (the heartbeat reports it)."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, count: int) -> float:
        now = time.monotonic()
        self.samples.append((now, count))
        while self.samples and now - self.samples[0][0] > RATE_WINDOW_SECONDS:
            self.samples.popleft()
        span = now - self.samples[0][0]
        total = sum(c for _, c in self.samples)
        return total / span if span > 0 else 0.0


class Worker:
    """One consumer of a dataset's events stream (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        spec: DatasetSpec,
        config: StreamConfig,
        notifier: AlertNotifier,
        champion: ChampionSource | None = None,
    ) -> None:
        self.redis = client
        self.spec = spec
        self.dataset = spec.name
        self.config = config
        self.notifier = notifier
        self.champion = champion or RegistryChampion(spec.name)
        self.model: ServedModel | None = None
        self.meta = store.live_meta(client, spec.name)
        self.knobs = Knobs.of(spec, self.meta.first_day)
        self.feature_set_version = feature_set(spec).registry_hash
        self.snapshot: online_store.SnapshotMeta | None = None
        """The online store's live snapshot, when it holds this feature set (else no rows are
        written: the API's snapshot was built from other feature declarations)."""
        self._snapshot_pointer: str | None = None
        self.processed = 0
        self._rate = _Rate()
        self._model_checked = 0.0

    # ----------------------------------------------------------------------------------------
    # The loop
    # ----------------------------------------------------------------------------------------

    def ensure_group(self) -> None:
        """Create the consumer group (from the start of the stream) if it does not exist."""
        try:
            self.redis.xgroup_create(
                store.events_key(self.dataset), store.GROUP, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def refresh_model(self, force: bool = False) -> None:
        """Load the registry's champion if it changed (checked every reload interval); a
        failure keeps the current model scoring."""
        now = time.monotonic()
        if not force and now - self._model_checked < self.config.reload_interval_seconds:
            return
        self._model_checked = now
        try:
            wanted = self.champion.version()
            if wanted is not None and (self.model is None or self.model.version != wanted):
                self.model = self.champion.load(wanted)
                log.info("%s: scoring with champion v%s", self.dataset, wanted)
        except Exception:  # the registry being down must not stop the features
            log.exception("%s: loading the champion failed; keeping the current one", self.dataset)
        if self.model is None:
            log.warning(
                "%s: no champion yet: features are updated, nothing is scored", self.dataset
            )

    def recover(self) -> int:
        """Re-process this consumer's own pending entries (delivered before a crash)."""
        total = 0
        while True:
            entries = self._read("0")
            if not entries:
                return total
            self.process(entries)
            total += len(entries)

    def claim(self) -> int:
        """Take over entries idle longer than ``claim_idle_ms`` at other consumers."""
        start, total = "0-0", 0
        while True:
            reply: Any = self.redis.xautoclaim(
                store.events_key(self.dataset),
                store.GROUP,
                self.config.consumer,
                min_idle_time=self.config.claim_idle_ms,
                start_id=start,
                count=self.config.batch_size,
            )
            next_start, entries = reply[0], reply[1]
            if entries:
                self.process(entries)
                total += len(entries)
            start = next_start.decode() if isinstance(next_start, bytes) else str(next_start)
            if start == "0-0":
                return total

    def run(self, should_stop: Callable[[], bool], idle_exit_seconds: float | None = None) -> None:
        """Serve until ``should_stop()`` (checked between batches), or after
        ``idle_exit_seconds`` without new entries (benchmarks and tests)."""
        self.ensure_group()
        self.refresh_model(force=True)
        self.recover()
        last_claim, last_entry = time.monotonic(), time.monotonic()
        while not should_stop():
            self.refresh_model()
            now = time.monotonic()
            if now - last_claim >= self.config.claim_idle_ms / 1000:
                self.claim()
                last_claim = now
            entries = self._read(">", block=True)
            if entries:
                self.process(entries)
                last_entry = time.monotonic()
            else:
                self._heartbeat_now()
                if idle_exit_seconds is not None and now - last_entry > idle_exit_seconds:
                    return

    def _read(self, start: str, block: bool = False) -> list[Entry]:
        reply: Any = self.redis.xreadgroup(
            store.GROUP,
            self.config.consumer,
            {store.events_key(self.dataset): start},
            count=self.config.batch_size,
            block=self.config.block_ms if block else None,
        )
        return list(reply[0][1]) if reply else []

    # ----------------------------------------------------------------------------------------
    # One batch
    # ----------------------------------------------------------------------------------------

    def process(self, entries: Sequence[Entry]) -> Outcome:
        """Apply, derive, score and commit one batch of entries (see the module docstring)."""
        outcome = Outcome()
        events: list[tuple[str, StreamEvent]] = []
        dead: list[tuple[str, dict[bytes, bytes], str]] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            if fields is None:  # trimmed from the stream while pending: nothing left to apply
                continue
            try:
                events.append((entry_id, decode(fields)))
            except MalformedEvent as exc:
                dead.append((entry_id, fields, str(exc)))
        counted, applied = self._apply(events)
        outcome.dead = len(dead)
        for _, event in events:
            if event.drop_reason() is not None:
                outcome.dropped += 1
            elif event.day < self.meta.as_of_day:
                outcome.before_state += 1
        frames, sources = self._derive(counted, applied)
        scores = self._score(frames, sources)
        sequences = {c: state.sequence for c, state in applied.states.items()}
        self._commit(entries, events, dead, frames, scores, sequences, outcome)
        return outcome

    def _apply(
        self, events: list[tuple[str, StreamEvent]]
    ) -> tuple[list[tuple[str, StreamEvent]], store.Applied]:
        """The events that count against the live version, applied; a hand-over in between
        makes the worker reload the version and apply again (duplicates change nothing)."""
        while True:
            counted = [(i, e) for i, e in events if store.counts(e, self.meta)]
            if not counted:
                return counted, store.Applied([], {})
            try:
                applied = store.apply_events(
                    self.redis, self.dataset, self.meta.version, [e for _, e in counted]
                )
                return counted, applied
            except store.VersionMoved as exc:
                log.info("%s; reloading", exc)
                self.meta = store.live_meta(self.redis, self.dataset)
                self.knobs = Knobs.of(self.spec, self.meta.first_day)

    def _derive(
        self, counted: list[tuple[str, StreamEvent]], applied: store.Applied
    ) -> tuple[list[pl.DataFrame], dict[str, tuple[list[str], list[str]]]]:
        """Features of the touched customers that have some (a purchase before T), one frame
        per T, and per customer the event ids and entry ids the batch brought."""
        newest: dict[str, datetime] = {}
        sources: dict[str, tuple[list[str], list[str]]] = {}
        for entry_id, event in counted:
            customer = event.customer_id or ""
            newest[customer] = max(newest.get(customer, event.event_ts), event.event_ts)
            ids, entry_ids = sources.setdefault(customer, ([], []))
            ids.append(event.event_id)
            entry_ids.append(entry_id)
        by_date: dict[date, dict[str, CustomerState]] = {}
        for customer, state in applied.states.items():
            by_date.setdefault(observation_after(newest[customer]), {})[customer] = state
        frames = [derive_frame(states, t, self.knobs) for t, states in by_date.items()]
        return [f for f in frames if not f.is_empty()], sources

    def _score(
        self, frames: list[pl.DataFrame], sources: dict[str, tuple[list[str], list[str]]]
    ) -> list[dict[str, str]]:
        """One score entry per customer with features."""
        if self.model is None:
            return []
        scorer, version = self.model.scorer, self.model.version
        out: list[dict[str, str]] = []
        for frame in frames:
            rows = FeatureRows.from_frame(frame, scorer.numeric, scorer.categorical)
            scores = scorer.score(rows, reasons=scorer.explainer is not None)
            contributions = scores.contributions
            top = [] if contributions is None else scores.top_reasons().tolist()
            as_of = frame["observation_date"][0].isoformat()
            for i, customer in enumerate(frame["customer_id"].to_list()):
                ids, entry_ids = sources[customer]
                entry: dict[str, str] = {
                    "customer_id": customer,
                    "as_of": as_of,
                    "probability": repr(float(scores.probability[i])),
                    "risk_decile": str(int(scores.decile[i])),
                    "model_version": version,
                    "event_id": ids[-1],
                    "event_ids": " ".join(ids),
                    "entry_ids": " ".join(entry_ids),
                }
                for rank, j in enumerate(top[i] if top else [], start=1):
                    assert contributions is not None
                    entry[f"reason_{rank}"] = scorer.features[j]
                    entry[f"reason_{rank}_value"] = json.dumps(rows.value(i, j))
                    entry[f"reason_{rank}_contribution"] = repr(float(contributions[i, j]))
                out.append(entry)
        return out

    def _alert(self, scores: list[dict[str, str]], previous: dict[str, Any]) -> int:
        """Notify for every customer whose probability reached the threshold from below."""
        threshold = self.config.alert_threshold
        sent = 0
        for score in scores:
            before = previous.get(score["customer_id"])
            if float(score["probability"]) >= threshold and (
                before is None or float(before) < threshold
            ):
                details = {k: v for k, v in score.items() if k not in ("event_ids", "entry_ids")}
                self.notifier.notify(ALERT_EVENT, {"dataset": self.dataset, **details})
                sent += 1
        return sent

    def _refresh_snapshot(self, pointer: bytes | None) -> None:
        """Re-read the online store's live snapshot when its pointer moved."""
        version = None if pointer is None else pointer.decode()
        if version != self._snapshot_pointer:
            self._snapshot_pointer = version
            meta = online_store.current_meta(self.redis, self.dataset)
            fits = meta is not None and meta.feature_set_version == self.feature_set_version
            self.snapshot = meta if fits else None

    def _commit(
        self,
        entries: Sequence[Entry],
        events: list[tuple[str, StreamEvent]],
        dead: list[tuple[str, dict[bytes, bytes], str]],
        frames: list[pl.DataFrame],
        scores: list[dict[str, str]],
        sequences: dict[str, int],
        outcome: Outcome,
    ) -> None:
        """Scores, online-store rows, dead letters, counters, heartbeat and the
        acknowledgement, all or nothing, and only for customers still at the sequence their
        features were derived at.

        Two workers can hold events of one customer at once; the one that applied first may
        commit last, and its score (missing the other's events) must not end up as the
        customer's latest. The customers' state keys are WATCHed, their sequences read, the
        superseded ones left out (the other worker's score covers their events), and EXEC
        retried if a watched key changed in between.
        """
        customers = [c for frame in frames for c in frame["customer_id"].to_list()]
        keys = [store.customer_key(self.dataset, self.meta.version, c) for c in customers]
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    fresh, previous = self._check(pipe, customers, keys, sequences)
                    kept = [s for s in scores if s["customer_id"] in fresh]
                    outcome.scored = len(kept)
                    outcome.superseded = len(customers) - len(fresh)
                    outcome.alerts = self._alert(kept, previous)
                    pipe.multi()
                    self._queue(pipe, entries, events, dead, frames, kept, fresh, outcome)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _check(
        self, pipe: Any, customers: list[str], keys: list[str], sequences: dict[str, int]
    ) -> tuple[set[str], dict[str, Any]]:
        """WATCH the customers' state; the ones still at their derived sequence, and every
        customer's previous probability (one script call); the online snapshot refreshed."""
        if not customers:
            return set(), {}
        pipe.watch(*keys)  # from here on the pipeline runs commands at once, until MULTI
        reply: Any = pipe.eval(
            _FRESHNESS,
            len(keys) + 2,
            *keys,
            risk_key(self.dataset),
            online_store.pointer_key(self.dataset),
            *customers,
        )
        n = len(customers)
        fresh = {c for c, seq in zip(customers, reply[:n], strict=True) if int(seq) == sequences[c]}
        self._refresh_snapshot(reply[2 * n])
        return fresh, dict(zip(customers, reply[n : 2 * n], strict=True))

    def _queue(
        self,
        pipe: Any,
        entries: Sequence[Entry],
        events: list[tuple[str, StreamEvent]],
        dead: list[tuple[str, dict[bytes, bytes], str]],
        frames: list[pl.DataFrame],
        scores: list[dict[str, str]],
        fresh: set[str],
        outcome: Outcome,
    ) -> None:
        if self.snapshot is not None:
            for frame in frames:
                rows = frame.filter(pl.col("customer_id").is_in(list(fresh)))
                as_of = rows["observation_date"].dt.to_string("%Y-%m-%d").to_list()
                online_store.stage_rows(pipe, self.snapshot, rows, as_of)
        for score in scores:
            pipe.xadd(
                store.scores_key(self.dataset),
                score,
                maxlen=self.config.scores_maxlen,
                approximate=True,
            )
        if scores:
            pipe.hset(
                risk_key(self.dataset),
                mapping={s["customer_id"]: s["probability"] for s in scores},
            )
        for entry_id, fields, reason in dead:
            pipe.xadd(
                store.dead_key(self.dataset),
                {**fields, b"reason": reason.encode(), b"entry_id": entry_id.encode()},
            )
        stats = store.stats_key(self.dataset)
        for name, value in vars(outcome).items():
            if value:
                pipe.hincrby(stats, name, value)
        if events:
            entry_id, event = events[-1]
            pipe.hset(
                stats,
                mapping={
                    "last_event_id": event.event_id,
                    "last_entry_id": entry_id,
                    "last_event_ts": event.event_ts.isoformat(sep=" "),
                    "updated_at": repr(time.time()),
                },
            )
        self.processed += len(entries)
        pipe.hset(
            store.consumers_key(self.dataset), self.config.consumer, self._heartbeat(len(entries))
        )
        pipe.xack(store.events_key(self.dataset), store.GROUP, *[e[0] for e in entries])

    def _heartbeat(self, count: int) -> str:
        return json.dumps(
            {
                "seen_at": time.time(),
                "processed": self.processed,
                "events_per_second": round(self._rate.add(count), 1),
                "model_version": None if self.model is None else self.model.version,
                "state_version": self.meta.version,
            }
        )

    def _heartbeat_now(self) -> None:
        self.redis.hset(store.consumers_key(self.dataset), self.config.consumer, self._heartbeat(0))
