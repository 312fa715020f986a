"""The event stream of an events dataset, as the platform sees it.

The worker (``python -m churn_assets.streaming``) is a long-running service, not a run per
event; this asset is its place in the graph. Materialized after each batch feature build, it
hands the online tile state over to the new build (the batch becomes the new truth, the events
streamed since its as-of are carried over, one pointer flip), writes the carried-over
customers' features back into the online store the API reads (the batch snapshot published
just before does not know those events), and records the stream's health as metadata: lag,
throughput, dead letters, the last processed event. Two checks:

* ``lag_and_dead_letters`` fails when the consumer group's backlog or the dead-letter stream
  pass the run config's thresholds;
* ``state_matches_batch``: customers the carried-over events did not touch derive, from the
  new state, exactly the batch's features at its as-of (the hand-over lost nothing).
"""

from collections.abc import Iterator
from datetime import date
from typing import Any

import dagster as dg
from pydantic import Field

from churn_assets.lib import online_store
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.months import month_after
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.batch import newest_observation, read_batch
from churn_assets.lib.stream.compare import compare_features
from churn_assets.lib.stream.events import day_of
from churn_assets.lib.stream.metrics import read_metrics
from churn_assets.lib.stream.tiles import CustomerState, Knobs, derive_frame
from churn_assets.resources import DuckDBResource, RedisResource
from churn_assets.settings import OWNER_ML

GROUP = "serving"
HEALTH_CHECK = "lag_and_dead_letters"
PARITY_CHECK = "state_matches_batch"


class EventStreamConfig(dg.Config):
    hand_over: bool = Field(
        default=True,
        description="Rebuild the online state from this batch build (false: only record health).",
    )
    max_lag: int = Field(
        default=10_000, ge=0, description="Most unprocessed entries the check accepts."
    )
    max_dead_letters: int = Field(
        default=0, ge=0, description="Most dead letters the check accepts."
    )
    parity_sample: int = Field(
        default=500, ge=1, description="Customers compared with the batch after the hand-over."
    )


def _republish(client: Any, spec: DatasetSpec, handed: store.HandOver) -> int:
    """The features of the customers the carried-over events touched, as of the observation
    date after their newest event, into the live online snapshot (when it has this feature
    set); the number of rows written."""
    snapshot = online_store.current_meta(client, spec.name)
    version = feature_set(spec).registry_hash
    if snapshot is None or snapshot.feature_set_version != version or not handed.touched:
        return 0
    states = store.read_states(client, spec.name, handed.meta.version, sorted(handed.touched))
    by_date: dict[date, dict[str, CustomerState]] = {}
    for customer, state in states.items():
        if state.newest_day is not None:
            t = month_after(day_of(state.newest_day))
            by_date.setdefault(t, {})[customer] = state
    knobs = Knobs.of(spec, handed.meta.first_day)
    pipe = client.pipeline(transaction=True)
    written = 0
    for t, group in by_date.items():
        frame = derive_frame(group, t, knobs)
        online_store.stage_rows(pipe, snapshot, frame, [t.isoformat()] * frame.height)
        written += frame.height
    pipe.execute()
    return written


def build_event_stream(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key("event_stream")
    features = feature_set(spec)

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"redis", "duckdb"},
        deps=[
            spec.key("fct_features"),
            spec.key("int_daily_tiles"),
            spec.key("stg_events"),
            spec.key("online_features"),
        ],
        pool="duckdb",
        tags={"dataset": spec.name},
        check_specs=[
            dg.AssetCheckSpec(
                HEALTH_CHECK,
                asset=name,
                description="The stream's backlog and dead letters are within the thresholds.",
            ),
            dg.AssetCheckSpec(
                PARITY_CHECK,
                asset=name,
                description="After the hand-over, sampled customers' online features equal "
                "the batch features at its as-of.",
            ),
        ],
        description=f"Live {spec.name} events (Redis stream churn:{spec.name}:events) keeping "
        "every customer's online tiles equal to the batch store's; scores go to "
        f"churn:{spec.name}:scores. Materializing hands the online state over to the newest "
        "batch build and records the stream's health.",
    )
    def event_stream(
        context: dg.AssetExecutionContext,
        config: EventStreamConfig,
        duckdb: DuckDBResource,
        redis: RedisResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        client = redis.client()
        handed = None
        if config.hand_over:
            with duckdb.connect(read_only=True) as con:
                batch = read_batch(con, spec, newest_observation(con, spec), duckdb.path)
            handed = store.hand_over(client, spec.name, batch, features.registry_hash)
            rows = _republish(client, spec, handed)
            context.log.info(
                f"{spec.name}: online state v{handed.meta.version} as of {handed.meta.as_of} "
                f"({handed.customers:,} customers, {handed.replayed:,} streamed events carried, "
                f"{rows:,} online-store rows updated from them)"
            )
        metrics = read_metrics(client, spec.name)
        yield dg.MaterializeResult(
            metadata={
                **{k: v for k, v in metrics.as_dict().items() if v is not None},
                "carried_over_events": 0 if handed is None else handed.replayed,
                "events_stream": store.events_key(spec.name),
                "scores_stream": store.scores_key(spec.name),
                "dead_letter_stream": store.dead_key(spec.name),
            }
        )
        yield dg.AssetCheckResult(
            check_name=HEALTH_CHECK,
            passed=metrics.lag <= config.max_lag
            and metrics.dead_letters <= config.max_dead_letters,
            metadata={
                "lag": metrics.lag,
                "max_lag": config.max_lag,
                "dead_letters": metrics.dead_letters,
                "max_dead_letters": config.max_dead_letters,
            },
        )
        if handed is None:
            return
        untouched = [
            c
            for c in store.customers(client, spec.name, handed.meta.version)
            if c not in handed.touched
        ][: config.parity_sample]
        online = derive_frame(
            store.read_states(client, spec.name, handed.meta.version, untouched),
            handed.meta.as_of,
            Knobs.of(spec, handed.meta.first_day),
        )
        with duckdb.connect(read_only=True) as con:
            offline = con.sql(
                f"SELECT * FROM {spec.db_schema('features')}.fct_features "
                "WHERE observation_date = ? AND customer_id IN (SELECT unnest(?::varchar[]))",
                params=[handed.meta.as_of, untouched],
            ).pl()
        mismatches = compare_features(online, offline, features.features, "customer_id")
        yield dg.AssetCheckResult(
            check_name=PARITY_CHECK,
            passed=not mismatches,
            metadata={
                "customers": len(untouched),
                "mismatches": len(mismatches),
                "first": dg.MetadataValue.md("\n".join(f"- {m}" for m in mismatches[:5]) or "none"),
            },
        )

    return event_stream
