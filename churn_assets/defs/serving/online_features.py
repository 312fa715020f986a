"""The online feature store of a dataset: every customer's newest feature row, in Redis.

Written after each feature build and promotion, under a new version prefix, then published by
flipping one pointer key (``churn_assets.lib.online_store``): the API never reads half of an
old and half of a new snapshot. Each row carries the observation date it is "as of", the
feature-set version (the registry hash) and the champion version that was serving then.
"""

from collections.abc import Iterator

import dagster as dg

from churn_assets.lib import online_store
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.resources import DuckDBResource, MLflowResource, RedisResource
from churn_assets.settings import OWNER_ML

GROUP = "serving"
CHECK = "sample_matches_offline"
SAMPLE = 200


def latest_features_sql(spec: DatasetSpec) -> str:
    """Every customer's newest feature row: the newest observation date (every customer with
    history before it has a row there), or the snapshot."""
    schema = spec.db_schema("features")
    if spec.kind == "events":
        return f"SELECT * FROM {schema}.features_latest"
    return f"SELECT * EXCLUDE (churned) FROM {schema}.fct_snapshot_features"


def build_online_features(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key("online_features")
    features = feature_set(spec)
    source = "features_latest" if spec.kind == "events" else "fct_snapshot_features"

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"redis", "duckdb"},
        deps=[spec.key(source), spec.key("model_promotion")],
        pool="duckdb",
        tags={"dataset": spec.name},
        check_specs=[
            dg.AssetCheckSpec(
                CHECK,
                asset=name,
                description=f"{SAMPLE} random customers read back from Redis equal the offline "
                "feature table, value for value.",
            )
        ],
        description=f"The newest feature row of every {spec.name} customer in Redis (one hash "
        "per customer), published atomically by a pointer flip; what the API scores from.",
    )
    def online_features(
        context: dg.AssetExecutionContext,
        duckdb: DuckDBResource,
        mlflow: MLflowResource,
        redis: RedisResource,
    ) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        with duckdb.connect(read_only=True) as con:
            frame = con.sql(latest_features_sql(spec)).pl()
        champion = registry.champion_version(spec.name) or "none"
        client = redis.client()
        written = online_store.write_snapshot(
            client,
            spec.name,
            frame,
            as_of="observation_date",
            feature_set_version=features.registry_hash,
            model_version=champion,
            features=list(features.names),
        )
        mismatches = online_store.sample_equals(client, spec.name, frame, SAMPLE, seed=0)
        context.log.info(
            f"{spec.name}: {written.rows:,} customers as snapshot v{written.version} "
            f"({written.rows_per_second:,.0f} rows/s)"
        )
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": written.rows,
                "snapshot_version": written.version,
                "seconds": round(written.seconds, 3),
                "rows_per_second": round(written.rows_per_second),
                "feature_set_version": features.registry_hash,
                "model_version": champion,
                "as_of": str(frame["observation_date"].max()),
            }
        )
        yield dg.AssetCheckResult(
            check_name=CHECK,
            passed=not mismatches,
            metadata={
                "sampled": min(SAMPLE, frame.height),
                "mismatches": len(mismatches),
                "first": dg.MetadataValue.md("\n".join(f"- {m}" for m in mismatches[:5]) or "none"),
            },
        )

    return online_features
