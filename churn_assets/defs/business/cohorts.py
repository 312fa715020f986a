"""The month's decision table and cohort map: every scored customer with value, tier and reasons.

One row per customer the champion scored at T (``<dataset>_monitoring.scores``), joined with
their value and, once mature, their label. The main reason is the strongest risk-raising SHAP
driver, grouped into the family the feature registry declares; every driver is also written as
a sentence ("spend in the last 180 days is low, +0.12") against the typical scored customer
(the feature's median at T), which is what a retention manager reads in the customer list.
"""

import base64
from collections.abc import Mapping

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    require_rows,
    table_name,
    write_rows,
)
from churn_assets.defs.business.value import VALUES_TABLE
from churn_assets.defs.monitoring.common import (
    SCORES_TABLE,
    features_input,
    observation_date,
    read_at,
)
from churn_assets.lib.business.cohorts import (
    N_DRIVERS,
    NO_REASON,
    cohort_grid,
    cohort_table,
    customer_table,
)
from churn_assets.lib.business.reasons import driver_sentences, top_reasons
from churn_assets.lib.business.report import cohort_heatmap_png
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.resources import DuckDBResource

CUSTOMERS_TABLE = "customers"
COHORTS_TABLE = "cohorts"
REFERENCES_TABLE = "feature_references"
DRIVER_COLUMNS = tuple(
    (f"driver_{i}", f"driver_{i}_value", f"driver_{i}_shap") for i in range(1, N_DRIVERS + 1)
)
MAIN_REASON_COLUMNS = ("reason_feature", "reason_value", "reason_shap")


def typical_values(features: pl.DataFrame, names: list[str]) -> dict[str, float]:
    """Median of each numeric feature over the customers at T: what "low" and "high" mean."""
    present = [n for n in names if n in features.columns]
    if not present or features.is_empty():
        return {}
    medians = features.select(pl.col(present).cast(pl.Float64).median()).row(0, named=True)
    return {k: float(v) for k, v in medians.items() if v is not None}


def references_frame(day: object, references: Mapping[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "observation_date": [day] * len(references),
            "feature": list(references),
            "typical_value": list(references.values()),
        },
        schema={"observation_date": pl.Date, "feature": pl.String, "typical_value": pl.Float64},
    )


def labels_of(spec: DatasetSpec, features: pl.DataFrame) -> pl.DataFrame:
    """customer_id, churned, is_mature: the monthly table carries maturity; a snapshot's labels
    are known (they are the file's own)."""
    if spec.kind == "events":
        return features.select("customer_id", "churned", "is_mature")
    return features.select("customer_id", "churned", is_mature=pl.lit(True))


def with_reasons(
    customers: pl.DataFrame,
    scores: pl.DataFrame,
    families: Mapping[str, str],
    descriptions: Mapping[str, str],
    references: Mapping[str, float],
) -> pl.DataFrame:
    """The main reason and each top-3 driver as sentences (``main_reason``, ``reason_1..3``)."""
    drivers = scores.select(
        pl.col("customer_id").cast(pl.String),
        *[
            driver_sentences(scores, columns, families, descriptions, references).alias(
                f"reason_{i}"
            )
            for i, columns in enumerate(DRIVER_COLUMNS, start=1)
        ],
    )
    main = driver_sentences(customers, MAIN_REASON_COLUMNS, families, descriptions, references)
    return customers.with_columns(main.alias("main_reason")).join(
        drivers, on="customer_id", how="left", maintain_order="left"
    )


def build_cohorts(spec: DatasetSpec) -> dg.AssetsDefinition:
    registry = feature_set(spec)

    @business_asset(
        spec,
        "cohorts",
        [SCORES_TABLE, VALUES_TABLE, features_input(spec)],
        {"duckdb", "python"},
        "Every scored customer with value, value tier (tertiles), main reason family and the "
        "top-3 drivers in words; the cohort map risk decile × value tier × reason family with "
        "size, mean predicted churn, revenue at risk (Σ p × value) and, once labels mature, "
        f"realized churn and calibration. Tables {table_name(spec, CUSTOMERS_TABLE)}, "
        f"{table_name(spec, COHORTS_TABLE)} and {table_name(spec, REFERENCES_TABLE)} (the "
        "typical value each driver is called low or high against).",
    )
    def cohorts(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        scores = read_at(duckdb, f"{spec.db_schema('monitoring')}.{SCORES_TABLE}", day)
        if scores.is_empty():
            raise dg.Failure(f"no scores at {day}: materialize {spec.key(SCORES_TABLE)} first")
        values = require_rows(duckdb, spec, VALUES_TABLE, day, VALUES_TABLE)
        features = read_at(duckdb, spec.scoring_table, day).join(
            scores.select("customer_id"), on="customer_id", how="semi"
        )
        families = registry.families
        descriptions = {f.name: f.description for f in registry.features}
        drivers = sorted(
            {d for columns in DRIVER_COLUMNS for d in scores[columns[0]].drop_nulls().unique()}
        )
        references = typical_values(features, [d for d in drivers if d in registry.numeric])
        try:
            table = customer_table(scores, values, families, labels_of(spec, features))
        except ValueError as error:
            raise dg.Failure(f"{day}: {error}") from error
        customers = with_reasons(table, scores, families, descriptions, references)
        cohort_rows = cohort_table(customers).with_columns(
            observation_date=pl.lit(day, dtype=pl.Date)
        )
        write_rows(
            duckdb,
            spec,
            day,
            {
                CUSTOMERS_TABLE: customers,
                COHORTS_TABLE: cohort_rows,
                REFERENCES_TABLE: references_frame(day, references),
            },
        )
        reasons = top_reasons(customers, descriptions, references)
        heatmap = cohort_heatmap_png(cohort_grid(cohort_rows), read_playbook(spec).currency)
        riskiest = customers.sort("churn_probability", descending=True).head(20)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": customers.height,
                "observation_date": day.isoformat(),
                "cohorts": cohort_rows.height,
                "revenue_at_risk": round(float(customers["revenue_at_risk"].sum()), 2),
                "customers_without_reason": customers.filter(
                    pl.col("reason_family") == NO_REASON
                ).height,
                "top_cohorts": metadata.table(cohort_rows.drop("observation_date"), 20, 3),
                "top_reasons": metadata.table(
                    reasons.select("reason", "family", "customers", "revenue_at_risk"), 10, 2
                ),
                "riskiest_customers": metadata.table(
                    riskiest.select(
                        "customer_id",
                        "churn_probability",
                        "value",
                        "main_reason",
                        "reason_1",
                        "reason_2",
                        "reason_3",
                    ),
                    digits=3,
                ),
                "plots": metadata.plots({"cohort_map.png": base64.b64decode(heatmap)}),
                "table": table_name(spec, CUSTOMERS_TABLE),
            }
        )

    return cohorts
