"""Per-observation-date features and labels of an events dataset: the input of scoring, drift
and realized performance.

dbt builds the whole feature table at once (cheap: sums over daily tiles); this asset snapshots
one month of it, for the customers active at T, into ``<dataset>_features.features_monthly`` so
each month is an addressable partition with its own materialization history. A backfill of many
months runs as one run (``BackfillPolicy.single_run``) and replaces exactly those months in one
transaction. Label maturity is carried here (``is_mature``), and read from here downstream.
"""

import dagster as dg
from dagster import AssetExecutionContext

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import qualified, table_exists, transaction
from churn_assets.lib.features_registry import feature_set
from churn_assets.partitions import observation_dates
from churn_assets.resources import DuckDBResource

TABLE = "features_monthly"


def _select(spec: DatasetSpec) -> str:
    """Every customer active at T, its features at T and its label (NULL while immature):
    fct_labels holds exactly the active (customer, T) pairs."""
    schema = spec.db_schema("features")
    features = ", ".join(f"f.{name}" for name in feature_set(spec).names)
    return f"""
        select f.customer_id, f.observation_date, {features}, l.churned, l.is_mature
        from {schema}.fct_labels as l
        join {schema}.fct_features as f
          on f.customer_id = l.customer_id and f.observation_date = l.observation_date
        where cast(l.observation_date as varchar) in (select unnest(?::varchar[]))
    """


def build_features_monthly(spec: DatasetSpec) -> dg.AssetsDefinition:
    name = spec.key(TABLE)
    target = qualified(spec.db_schema("features"), TABLE)
    features = feature_set(spec)

    @dg.asset(
        name=name,
        group_name="features",
        owners=[spec.owner],
        kinds={"duckdb"},
        partitions_def=observation_dates(spec),
        backfill_policy=dg.BackfillPolicy.single_run(),
        deps=[spec.key("fct_features"), spec.key("fct_labels")],
        pool="duckdb",
        code_version=features.registry_hash,
        tags={"dataset": spec.name},
        metadata={"table": f"{spec.db_schema('features')}.{TABLE}"},
        description="Features and label (with its maturity) of every customer active at T, one "
        "partition per observation date.",
    )
    def features_monthly(
        context: AssetExecutionContext, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        months = list(context.partition_keys)
        select = _select(spec)
        with duckdb.connect() as con:
            columns = [d[0] for d in con.execute(f"{select} LIMIT 0", [months]).description]
            with transaction(con):
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {spec.db_schema('features')}")
                # Changed feature definitions change the columns: the old months were computed
                # under another registry version (Dagster shows them stale) and go with the table.
                if (
                    table_exists(con, spec.db_schema("features"), TABLE)
                    and [d[0] for d in con.execute(f"SELECT * FROM {target} LIMIT 0").description]
                    != columns
                ):
                    con.execute(f"DROP TABLE {target}")
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} AS {select} LIMIT 0", [months])
                con.execute(
                    f"DELETE FROM {target} WHERE cast(observation_date as varchar) "
                    "in (select unnest(?::varchar[]))",
                    [months],
                )
                con.execute(f"INSERT INTO {target} {select}", [months])
            row = con.execute(
                f"SELECT count(*), count(churned), coalesce(avg(churned), 0) FROM {target} "
                "WHERE cast(observation_date as varchar) in (select unnest(?::varchar[]))",
                [months],
            ).fetchone()
        assert row is not None
        written, labelled, churn_rate = row
        context.log.info(f"replaced {written} rows for {months[0]} .. {months[-1]}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(written),
                "observation_dates": f"{months[0]} .. {months[-1]} ({len(months)})",
                "matured_labels": int(labelled),
                "churn_rate": round(float(churn_rate), 4),
            }
        )

    return features_monthly
