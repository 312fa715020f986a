"""The worker against a real Redis: a small stream, crashes, redelivery, claims, dead letters
and the hand-over, each ending in exact features."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl
import pytest

from churn_assets.lib import online_store
from churn_assets.lib.contracts import read_file
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.events import StreamEvent, encode
from churn_assets.lib.stream.tiles import Knobs, derive, derive_frame
from churn_assets.resources import AlertNotifier
from churn_assets.serving.models import ServedModel
from churn_assets.streaming import producer
from churn_assets.streaming.config import StreamConfig
from churn_assets.streaming.worker import Worker
from churn_assets_tests.redis_server import RedisServer
from churn_assets_tests.streaming.conftest import batch_of
from churn_assets_tests.streaming.fixtures import (
    CUSTOMER_1,
    FIXTURE_FIRST_DAY,
    event,
    reference_state,
)

AS_OF = date(2011, 3, 1)
T = date(2011, 4, 1)
FIRST_DAY = date.fromisoformat(FIXTURE_FIRST_DAY)
OLD = event("099", "A", 1, "2011-02-15 10:00", 1.0)  # before the state's as-of: the batch's
ANONYMOUS = event("500", "A", 1, "2011-03-03 10:00", 5.0, None)
SECOND = event("200", "B", 2, "2011-03-15 09:30", 4.0, "2")
STREAMED = [e for e in CUSTOMER_1 if e.event_ts.date() >= AS_OF]


@dataclass(frozen=True)
class FixedChampion:
    model: ServedModel

    def version(self) -> str:
        return self.model.version

    def load(self, version: str) -> ServedModel:
        return self.model


class RecordingNotifier(AlertNotifier):
    def notify(self, event: str, payload: dict[str, Any]) -> bool:
        self.__dict__.setdefault("sent", []).append(payload)
        return True


def _start(client: Any, spec: DatasetSpec) -> store.StateMeta:
    """The online state at AS_OF from the batch (customer 1's events before it)."""
    handed = store.hand_over(client, spec.name, batch_of(list(CUSTOMER_1), AS_OF, FIRST_DAY), "t")
    return handed.meta


def _publish(client: Any, spec: DatasetSpec, events: list[StreamEvent]) -> None:
    producer.publish(client, spec.name, [encode(vars(e)) for e in events])


def _worker(client: Any, spec: DatasetSpec, champion: ServedModel, **config: Any) -> Worker:
    settings = StreamConfig(consumer=config.pop("consumer", "w1"), **config)
    return Worker(client, spec, settings, RecordingNotifier(), FixedChampion(champion))


def _online(client: Any, spec: DatasetSpec, customer: str, t: date = T) -> dict[str, Any] | None:
    meta = store.live_meta(client, spec.name)
    states = store.read_states(client, spec.name, meta.version, [customer])
    return derive(states[customer], t, Knobs.of(spec, meta.first_day))


def _expected(events: list[StreamEvent] | tuple[StreamEvent, ...], spec: DatasetSpec) -> Any:
    return derive(reference_state(events), T, Knobs.of(spec, FIRST_DAY))


def _drained(client: Any, spec: DatasetSpec) -> bool:
    (group,) = client.xinfo_groups(store.events_key(spec.name))
    return group["pending"] == 0 and group["lag"] == 0


def _scores(client: Any, spec: DatasetSpec) -> list[dict[str, str]]:
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in client.xrange(store.scores_key(spec.name))
    ]


def test_small_stream_gives_exact_features_scores_and_dead_letters(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, [OLD, *STREAMED[:2], ANONYMOUS, SECOND, *STREAMED[2:]])
    client.xadd(store.events_key(spec.name), {"event_id": "broken:0", "event_type": "gift"})
    # one entry per batch: some batches have no customer to score (dead, dropped, older)
    worker = _worker(client, spec, tiny_champion, batch_size=1, block_ms=10)
    worker.run(lambda: False, idle_exit_seconds=0.3)

    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)
    assert _online(client, spec, "2") == _expected([SECOND], spec)
    stats = {k.decode(): v.decode() for k, v in client.hgetall(store.stats_key(spec.name)).items()}
    assert stats["applied"] == str(len(STREAMED) + 1)
    assert (stats["before_state"], stats["dropped"], stats["dead"]) == ("1", "1", "1")
    assert "duplicates" not in stats
    ((_, dead),) = client.xrange(store.dead_key(spec.name))
    assert dead[b"reason"] == b"missing field(s) event_ts, amount"
    assert dead[b"event_id"] == b"broken:0"
    scores = _scores(client, spec)
    assert {s["customer_id"] for s in scores} == {"1", "2"}
    assert all(s["model_version"] == "7" and s["reason_3"] for s in scores)
    assert sorted(i for s in scores for i in s["event_ids"].split()) == sorted(
        e.event_id for e in [*STREAMED, SECOND]
    )
    # the event at 2011-04-01 00:00 is scored as of the next month start
    assert {s["as_of"] for s in scores if STREAMED[-1].event_id in s["event_ids"]} == {"2011-05-01"}
    assert _drained(client, spec)


def test_crash_between_tile_update_and_ack(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    """The tiles are updated, then the worker dies before the ack: its restart re-reads the
    entries, finds them applied, changes nothing, and scores and acknowledges them once."""
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, STREAMED)

    class Crash(Exception):
        pass

    class CrashingWorker(Worker):
        def _commit(self, *args: Any, **kwargs: Any) -> None:
            raise Crash

    crashing = CrashingWorker(
        client, spec, StreamConfig(consumer="w1"), AlertNotifier(), FixedChampion(tiny_champion)
    )
    with pytest.raises(Crash):
        crashing.run(lambda: False)
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)  # applied, not acked
    assert client.xpending(store.events_key(spec.name), store.GROUP)["pending"] == len(STREAMED)
    assert _scores(client, spec) == []

    restarted = _worker(client, spec, tiny_champion)
    restarted.run(lambda: False, idle_exit_seconds=0.2)
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)
    stats = client.hgetall(store.stats_key(spec.name))
    assert int(stats[b"applied"]) == len(STREAMED)
    assert int(stats[b"duplicates"]) == len(STREAMED)
    assert len(_scores(client, spec)) == 1
    assert _drained(client, spec)


def test_a_duplicate_delivery_is_counted_once(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, [*STREAMED, STREAMED[1], *STREAMED])
    _worker(client, spec, tiny_champion, batch_size=2).run(lambda: False, idle_exit_seconds=0.2)
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)
    stats = client.hgetall(store.stats_key(spec.name))
    assert (int(stats[b"applied"]), int(stats[b"duplicates"])) == (len(STREAMED), 5)


def test_a_score_superseded_by_another_worker_is_not_written(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    """Worker "slow" applies the first events of a customer; before it commits, worker "fast"
    applies the later ones and commits a score that covers them all. The slow score would miss
    them, so it is left out: the customer's newest score stays the complete one."""
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, STREAMED[:2])
    fast = _worker(client, spec, tiny_champion, consumer="fast")

    class Slow(Worker):
        def _score(self, *args: Any) -> list[dict[str, str]]:
            if not fast.processed:
                _publish(client, spec, STREAMED[2:])
                fast.run(lambda: False, idle_exit_seconds=0.1)
            return super()._score(*args)

    slow = Slow(
        client,
        spec,
        StreamConfig(consumer="slow", batch_size=2),
        AlertNotifier(),
        FixedChampion(tiny_champion),
    )
    slow.ensure_group()
    slow.run(lambda: False, idle_exit_seconds=0.1)
    (score,) = _scores(client, spec)
    assert score["event_ids"].split() == [e.event_id for e in STREAMED[2:]]
    assert score["as_of"] == "2011-05-01"
    stats = client.hgetall(store.stats_key(spec.name))
    assert (stats[b"scored"], stats[b"superseded"]) == (b"1", b"1")
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)
    assert _drained(client, spec)


def test_entries_of_a_dead_consumer_are_claimed(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, STREAMED)
    dead = _worker(client, spec, tiny_champion, consumer="dead")
    dead.ensure_group()
    assert len(dead._read(">")) == len(STREAMED)  # delivered, never processed
    alive = _worker(client, spec, tiny_champion, consumer="alive", claim_idle_ms=50)
    time.sleep(0.1)
    assert alive.claim() == len(STREAMED)
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)
    assert _drained(client, spec)


def test_hand_over_to_a_newer_batch_keeps_the_streamed_events(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    """A batch as of 2011-03-05 (it has the first streamed events, not the later ones)
    becomes the state; the events streamed since its as-of are carried over, and a worker
    still holding the old version moves to the new one."""
    client = redis_server.client()
    old = _start(client, spec)
    worker = _worker(client, spec, tiny_champion)
    _publish(client, spec, STREAMED[:3])
    worker.run(lambda: False, idle_exit_seconds=0.2)
    newer = batch_of(list(CUSTOMER_1), date(2011, 3, 5), FIRST_DAY)
    handed = store.hand_over(client, spec.name, newer, "t")
    assert handed.replaced == old.version and handed.replayed == 1  # C105 on 03-10
    assert client.ttl(f"{store.version_base(spec.name, old.version)}applied") > 0
    _publish(client, spec, STREAMED[3:])
    worker.run(lambda: False, idle_exit_seconds=0.2)
    assert worker.meta.version == handed.meta.version
    assert _online(client, spec, "1") == _expected(CUSTOMER_1, spec)


def test_alert_when_a_customer_crosses_the_threshold(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    client = redis_server.client()
    _start(client, spec)
    _publish(client, spec, STREAMED)
    worker = _worker(client, spec, tiny_champion, alert_threshold=1e-7, batch_size=1)
    worker.run(lambda: False, idle_exit_seconds=0.2)
    sent = worker.notifier.__dict__.get("sent", [])
    assert [p["customer_id"] for p in sent] == ["1"]  # crossed once, then stayed above
    assert sent[0]["model_version"] == "7" and "event_ids" not in sent[0]


def test_worker_updates_the_online_store_rows_the_api_reads(
    redis_server: RedisServer, spec: DatasetSpec, tiny_champion: ServedModel
) -> None:
    """A published online snapshot (the batch's rows at AS_OF) gets the streamed customers'
    new rows, as of the observation date after their newest event; other rows stay."""
    client = redis_server.client()
    _start(client, spec)
    knobs = Knobs.of(spec, FIRST_DAY)
    batch_rows = derive_frame(
        {"1": reference_state(list(CUSTOMER_1)[:2]), "9": reference_state([OLD])}, AS_OF, knobs
    )
    online_store.write_snapshot(
        client,
        spec.name,
        batch_rows,
        as_of="observation_date",
        feature_set_version=feature_set(spec).registry_hash,
        model_version="7",
        features=list(knobs.names),
    )
    _publish(client, spec, STREAMED)
    _worker(client, spec, tiny_champion).run(lambda: False, idle_exit_seconds=0.2)
    rows, missing, _ = online_store.read_rows(client, spec.name, ["1", "9"])
    assert missing == []
    stored = dict(zip(rows["customer_id"], rows.drop("customer_id").to_dicts(), strict=True))
    may = date(2011, 5, 1)
    assert stored["1"] == {"as_of": may, **(derive(reference_state(CUSTOMER_1), may, knobs) or {})}
    assert stored["9"]["as_of"] == AS_OF


def test_producer_dead_letters_rows_the_contract_refuses(
    redis_server: RedisServer, specs: dict[str, DatasetSpec], spec: DatasetSpec
) -> None:
    """Rows the contract names go to the dead-letter stream with its words; the others get
    the content keys the batch load gives them."""
    retail = specs["retail"]
    archive = pl.read_parquet(retail.source_files()[0], n_rows=50)
    broken = archive.with_columns(
        invoice=pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("X1")).otherwise("invoice"),
        quantity=pl.when(pl.int_range(pl.len()) == 7).then(0).otherwise("quantity"),
    )
    good, dead = producer.validate_rows(retail, broken, "delivery")
    assert [d.row["invoice"] for d in dead] == ["X1", broken["invoice"][7]]
    assert "invoice_format" in dead[0].reason and "quantity_non_zero" in dead[1].reason
    assert good.height == 48
    client = redis_server.client()
    assert producer.dead_letter(client, spec.name, dead) == 2
    reasons = [f[b"reason"].decode() for _, f in client.xrange(store.dead_key(spec.name))]
    assert reasons == [d.reason for d in dead]

    kept = broken.filter(~pl.int_range(pl.len()).is_in([3, 7]))
    path = redis_server.data_dir / "kept.parquet"
    kept.write_parquet(path)
    assert good["event_id"].to_list() == read_file(retail, path)["event_id"].to_list()
    assert set(feature_set(retail).names).isdisjoint(good.columns)
