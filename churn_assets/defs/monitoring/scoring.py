"""Batch scoring: the champion scores every customer at an observation date."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from churn_assets import metadata
from churn_assets.defs.monitoring.common import (
    SCORES_TABLE,
    features_input,
    monitoring_asset,
    observation_dates_of_run,
    read_dates,
    record,
    reference,
)
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import replace_rows
from churn_assets.lib.explain import top_drivers
from churn_assets.lib.scoring import decile_edges, risk_deciles
from churn_assets.resources import DuckDBResource, MLflowResource

N_DRIVERS = 3


def score_frame(model: registry.Champion, features: pl.DataFrame, day: object) -> pl.DataFrame:
    """Probability, risk decile (against the model's own training scores) and top drivers."""
    explained = top_drivers(model.model, features, k=N_DRIVERS)
    edges = decile_edges(reference(model).scores)
    probabilities = explained["churn_probability"].to_numpy()
    return explained.select(
        pl.lit(day).cast(pl.Date).alias("observation_date"),
        pl.col("customer_id").cast(pl.String),
        "churn_probability",
        pl.Series("risk_decile", risk_deciles(probabilities, edges), dtype=pl.Int32),
        *[
            pl.col(f"driver_{i}{suffix}")
            for i in range(1, N_DRIVERS + 1)
            for suffix in ("", "_value", "_shap")
        ],
        pl.lit(registry.registered_model_name(model.dataset)).alias("model_name"),
        pl.lit(model.version).alias("model_version"),
        pl.lit(datetime.now(UTC).replace(tzinfo=None)).alias("scored_at"),
    )


def score_metadata(
    spec: DatasetSpec, model: registry.Champion, scored: pl.DataFrame
) -> dict[str, Any]:
    """One observation date's scores at a glance: volume, mean risk and the riskiest rows."""
    probabilities = scored["churn_probability"].to_numpy()
    top = scored.sort("churn_probability", descending=True).head(20)
    return {
        "dagster/row_count": scored.height,
        "model_version": model.version,
        "training_set_version": model.training_set_version,
        "mean_churn_probability": round(float(np.mean(probabilities)), 4),
        "customers_in_top_decile": int((scored["risk_decile"] == 10).sum()),
        "table": f"{spec.db_schema('monitoring')}.{SCORES_TABLE}",
        "riskiest_customers": metadata.table(
            top.select(
                "customer_id",
                "churn_probability",
                "risk_decile",
                "driver_1",
                "driver_1_shap",
                "driver_2",
                "driver_3",
            )
        ),
    }


def build_scores(spec: DatasetSpec) -> dg.AssetsDefinition:
    table = spec.scoring_table

    @monitoring_asset(
        spec,
        SCORES_TABLE,
        # The promotion gate decides which model is champion: lineage shows what scores depend on.
        [features_input(spec), "model_promotion"],
        {"duckdb", "mlflow", "python"},
        "Churn probability, risk decile (against the model's own training scores) and the top-3 "
        "drivers of every customer at the observation date, by the registry's champion; the "
        f"model version is on every row. Table {spec.db_schema('monitoring')}.{SCORES_TABLE}.",
    )
    def scores(
        context: dg.AssetExecutionContext, duckdb: DuckDBResource, mlflow: MLflowResource
    ) -> dg.MaterializeResult:
        days = observation_dates_of_run(spec, context)
        model = registry.load_champion(spec.name)
        if model is None:
            raise dg.Failure(
                f"no champion for {registry.registered_model_name(spec.name)}: materialize the "
                "training group first (the promotion gate makes the first sane model champion)"
            )
        features_by_day = read_dates(duckdb, table, days)
        missing = sorted(set(model.features) - set(features_by_day[days[0]].columns))
        if missing:
            raise dg.Failure(
                f"champion v{model.version} needs features absent from {table}: {missing}; "
                "retrain (the feature declarations changed) or restore the feature store"
            )
        scored: list[pl.DataFrame] = []
        for day, features in features_by_day.items():
            if features.is_empty():
                raise dg.Failure(f"no customers to score at {day} in {table}")
            scored.append(score_frame(model, features, day))
            record(spec, context, day, score_metadata(spec, model, scored[-1]))
        with duckdb.connect() as con:
            replace_rows(
                con,
                spec.db_schema("monitoring"),
                SCORES_TABLE,
                pl.concat(scored),
                f"observation_date IN ({', '.join('?' * len(days))})",
                days,
            )
        return dg.MaterializeResult(tags={"churn/model_version": model.version})

    return scores
