"""Monthly batch scoring: the champion scores every customer active at observation date T."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl

from churn_assets.lib import registry_models as registry
from churn_assets.lib.explain import top_drivers
from churn_assets.lib.metadata import md_table
from churn_assets.lib.training_set import DATA_FILE
from churn_assets.partitions import observation_months
from churn_assets.resources import DuckDBResource, MLflowResource
from churn_assets.settings import OWNER_ML

MONITORING_SCHEMA = "monitoring"
SCORES_TABLE = "retail_scores"
DATASET = "retail"
FEATURES_ASSET = dg.AssetKey("retail_features_monthly")
FEATURES_TABLE = "features.retail_features_monthly"
"""One row per (customer active at T, T): features and, once mature, the label."""

N_DRIVERS = 3

# A month is scored once a month; two missed months means the monitoring loop is broken.
MONTHLY_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=62), warn_window=timedelta(days=35)
)

SCORES_DDL = f"""
CREATE TABLE IF NOT EXISTS {MONITORING_SCHEMA}.{SCORES_TABLE} (
    observation_date DATE NOT NULL,
    customer_id INTEGER NOT NULL,
    churn_probability DOUBLE NOT NULL,
    risk_decile INTEGER NOT NULL,
    driver_1 VARCHAR,
    driver_1_shap DOUBLE,
    driver_2 VARCHAR,
    driver_2_shap DOUBLE,
    driver_3 VARCHAR,
    driver_3_shap DOUBLE,
    model_name VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    scored_at TIMESTAMP NOT NULL,
    PRIMARY KEY (observation_date, customer_id)
)
"""


def read_month(duckdb: DuckDBResource, table: str, month: date) -> pl.DataFrame:
    with duckdb.connect(read_only=True) as con:
        return con.sql(f"SELECT * FROM {table} WHERE observation_date = ?", params=[month]).pl()


def reference_frame(model: registry.Champion) -> pl.DataFrame:
    """The training set the model version was fitted on (path recorded as an MLflow run tag)."""
    return pl.read_parquet(model.training_set_path / DATA_FILE)


def risk_deciles(probabilities: np.ndarray) -> np.ndarray:
    """10 = the riskiest tenth of the month's customers, 1 = the safest (rank-based, ties by order)."""
    n = probabilities.size
    if n == 0:
        return np.array([], dtype=int)
    order = np.argsort(probabilities, kind="mergesort")
    ranks = np.empty(n, dtype=int)
    ranks[order] = np.arange(n)
    return (ranks * 10 // n + 1).astype(int)


def replace_partition(duckdb: DuckDBResource, month: date, scores: pl.DataFrame) -> None:
    """Delete-and-insert the month in one transaction: other months are never touched."""
    with duckdb.connect() as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {MONITORING_SCHEMA}")
        con.execute(SCORES_DDL)
        con.register("incoming_scores", scores.to_arrow())
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"DELETE FROM {MONITORING_SCHEMA}.{SCORES_TABLE} WHERE observation_date = ?",
                [month],
            )
            con.execute(
                f"INSERT INTO {MONITORING_SCHEMA}.{SCORES_TABLE} BY NAME SELECT * FROM incoming_scores"
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("incoming_scores")


@dg.asset(
    partitions_def=observation_months,
    # The promotion gate decides which model is champion: lineage shows what scores depend on.
    deps=[FEATURES_ASSET, "retail_model_promotion"],
    group_name="monitoring",
    kinds={"duckdb", "mlflow", "python"},
    owners=[OWNER_ML],
    pool="duckdb",
    tags={"layer": "monitoring"},
    freshness_policy=MONTHLY_FRESHNESS,
)
def retail_scores(
    context: dg.AssetExecutionContext, duckdb: DuckDBResource, mlflow: MLflowResource
) -> dg.MaterializeResult:
    """Churn probability, risk decile and top-3 SHAP drivers for every customer active at T.

    Scored by the registry's current ``champion`` of ``churn-retail``; the model version is
    stored on every row so drift and realized performance can later resolve the exact model
    (and its training reference) that produced the month's scores. Re-running a month
    replaces only that month's rows, in one transaction.
    """
    month = date.fromisoformat(context.partition_key)
    mlflow.setup()
    model = registry.load_champion(DATASET)
    if model is None:
        raise dg.Failure(
            f"no champion for {registry.registered_model_name(DATASET)}: materialize the training "
            "group first (the promotion gate makes the first sane model champion)"
        )
    features = read_month(duckdb, FEATURES_TABLE, month)
    if features.is_empty():
        raise dg.Failure(f"no active customers at {month} in {FEATURES_TABLE}")
    missing = sorted(set(model.features) - set(features.columns))
    if missing:
        raise dg.Failure(
            f"champion v{model.version} needs features absent from {FEATURES_TABLE}: {missing}; "
            "retrain (the feature registry changed) or restore the feature store"
        )
    explained = top_drivers(model.model, features, k=N_DRIVERS)
    probabilities = explained["churn_probability"].to_numpy()
    name = registry.registered_model_name(DATASET)
    scores = explained.select(
        pl.lit(month).alias("observation_date"),
        pl.col("customer_id").cast(pl.Int32),
        "churn_probability",
        pl.Series("risk_decile", risk_deciles(probabilities)),
        *[
            pl.col(f"driver_{i}{suffix}")
            for i in range(1, N_DRIVERS + 1)
            for suffix in ("", "_shap")
        ],
        pl.lit(name).alias("model_name"),
        pl.lit(model.version).alias("model_version"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("scored_at"),
    )
    replace_partition(duckdb, month, scores)
    top = scores.sort("churn_probability", descending=True).head(10)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": scores.height,
            "model_name": name,
            "model_version": model.version,
            "training_set_version": model.training_set_version,
            "mean_churn_probability": float(probabilities.mean()),
            "table": f"{MONITORING_SCHEMA}.{SCORES_TABLE}",
            "riskiest_customers": dg.MetadataValue.md(
                md_table(
                    top.select(
                        "customer_id",
                        "churn_probability",
                        "risk_decile",
                        "driver_1",
                        "driver_2",
                        "driver_3",
                    )
                )
            ),
        },
        tags={"churn/model_version": model.version},
    )
