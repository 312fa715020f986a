"""Explanations of the newly registered model: global plots, and the top drivers of every
customer at the training set's newest observation date."""

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.training.candidates import GROUP
from churn_assets.defs.training.configs import ShapConfig
from churn_assets.lib import explain
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import replace_table
from churn_assets.lib.metadata import md_table
from churn_assets.lib.modeling import feature_frame
from churn_assets.lib.modeling.protocol import RegisteredModel
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import DuckDBResource, MLflowResource
from churn_assets.settings import OWNER_ML

TABLE = "shap_drivers"


def build_explanations(spec: DatasetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.key("shap_explanations"),
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"shap", "duckdb", "mlflow"},
        ins={
            "training_set": dg.AssetIn(key=spec.key("training_set")),
            "registered": dg.AssetIn(key=spec.key("model_selection")),
        },
        pool="duckdb",
        tags={"dataset": spec.name},
        description=f"SHAP for the newly registered {spec.name} model: global plots, and the "
        f"top drivers of every customer at the newest observation date in "
        f"{spec.db_schema('training')}.{TABLE}.",
    )
    def shap_explanations(
        context: dg.AssetExecutionContext,
        config: ShapConfig,
        mlflow: MLflowResource,
        duckdb: DuckDBResource,
        training_set: TrainingSet,
        registered: RegisteredModel,
    ) -> dg.MaterializeResult:
        model = registry.load_model_version(spec.name, registered.version).model
        frame = training_set.frame()
        latest = frame[training_set.time_column].max()
        population = frame.filter(pl.col(training_set.time_column) == latest)
        drivers = explain.top_drivers(model, population, k=config.top_k)
        sample = population.sample(n=min(config.max_rows_for_plots, len(population)), seed=0)
        explanation = explain.explain(
            model, feature_frame(sample, model.numeric_features, model.categorical_features)
        )
        figures = explain.shap_plots(explanation)
        importance = explain.global_importance(explanation)
        registry.log_pngs_to_run(registered.candidate.run_id, figures, "shap")
        with duckdb.connect() as con:
            replace_table(con, spec.db_schema("training"), TABLE, drivers)
        context.log.info(f"{spec.name}: {len(drivers)} customers explained")
        return dg.MaterializeResult(
            metadata={
                "global_importance": metadata.table(
                    pl.DataFrame(
                        {
                            "feature": importance.index.tolist()[:15],
                            "mean_abs_shap": importance.to_numpy()[:15],
                        }
                    )
                ),
                "plots": metadata.plots(figures),
                "drivers_table": f"{spec.db_schema('training')}.{TABLE}",
                "drivers_preview": dg.MetadataValue.md(md_table(drivers.head(10))),
                "dagster/row_count": len(drivers),
                "observation_date": str(latest),
                "model_version": registered.version,
                "mlflow_run_id": registered.candidate.run_id,
            }
        )

    return shap_explanations
