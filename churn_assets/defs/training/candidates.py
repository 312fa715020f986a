"""Candidate models of a dataset: each is fitted on the training part, validated on the
protocol's folds, evaluated on the test part and logged to MLflow (not registered: the
selection registers the validation winner).

The logistic baseline fixes the run's protocol; every other candidate inherits it from the
baseline's output, so all are compared on the same rows with the same costs.
"""

import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from sklearn.pipeline import Pipeline

from churn_assets import metadata
from churn_assets.defs.training.configs import BaselineConfig, DeepConfig, XGBoostConfig
from churn_assets.lib import modeling
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.evaluation import evaluation_plots, metrics_markdown
from churn_assets.lib.modeling import recipes
from churn_assets.lib.modeling.protocol import Candidate, Protocol, validation_auc
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import MLflowResource
from churn_assets.settings import OWNER_ML, ChurnSettings

GROUP = "training"
# Candidates, selection and promotion share one pool: they all write MLflow's sqlite store and
# saturate the CPU, so datasets queue instead of contending (limit 1 in dagster.yaml).
MLFLOW_POOL = "mlflow"


def candidate_asset(spec: DatasetSpec, name: str, kinds: set[str], description: str) -> Any:
    """The decorator of a candidate asset: reads the training set (and, except for the
    baseline, the baseline's protocol)."""
    ins = {"training_set": dg.AssetIn(key=spec.key("training_set"))}
    if name != "baseline":
        ins["baseline"] = dg.AssetIn(key=spec.key("baseline_model"))
    return dg.asset(
        name=spec.key(f"{name}_model"),
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={*kinds, "mlflow"},
        ins=ins,
        pool=MLFLOW_POOL,
        tags={"dataset": spec.name, "protocol": spec.protocol, "candidate": name},
        description=description,
    )


def fit_and_log(
    context: dg.AssetExecutionContext,
    spec: DatasetSpec,
    mlflow: MLflowResource,
    ts: TrainingSet,
    protocol: Protocol,
    name: str,
    pipeline: Callable[[], Pipeline],
    params: dict[str, Any],
    extra_metrics: dict[str, float] | None = None,
) -> dg.Output[Candidate]:
    """Fit with out-of-fold calibration, evaluate on the test part, log the run."""
    started = time.perf_counter()
    split = protocol.split(ts, ts.frame())
    model, fold_auc = modeling.fit_calibrated(
        pipeline(),
        ts,
        split,
        calibration=protocol.calibration_method,
        threshold=protocol.threshold,
    )
    evaluation = protocol.evaluate(model, split)
    validation = validation_auc(fold_auc)
    metrics = {**evaluation.metrics, "validation_auc": validation, **(extra_metrics or {})}
    figures = evaluation_plots({name: evaluation})
    logged = registry.log_model_run(
        experiment_id=mlflow.experiment_id(registry.experiment_name(spec.name)),
        run_name=f"{spec.name}-{name}",
        model=model,
        ts=ts,
        input_example=split.x_train.head(5),
        params={"model": name, **params, **protocol.params()},
        metrics=metrics,
        figures=figures,
        tags={"role": "candidate", "candidate": name, "protocol": protocol.kind},
    )
    seconds = round(time.perf_counter() - started, 1)
    context.log.info(
        f"{spec.name} {name}: validation ROC-AUC {validation:.4f}, test {metrics['roc_auc']:.4f}"
    )
    candidate = Candidate(
        name=name,
        run_id=logged.run_id,
        model_uri=logged.model_uri,
        training_set_version=ts.version,
        protocol=protocol,
        metrics=metrics,
        validation_auc=validation,
        params=params,
    )
    return dg.Output(
        candidate,
        metadata={
            "metrics": dg.MetadataValue.md(metrics_markdown({name: metrics})),
            "validation_roc_auc": round(validation, 4),
            "test_roc_auc": round(metrics["roc_auc"], 4),
            "split": dg.MetadataValue.json(split.description),
            "plots": metadata.plots(figures),
            "mlflow_run_id": logged.run_id,
            "training_set_version": ts.version,
            "seconds": seconds,
        },
    )


def tuned(
    context: dg.AssetExecutionContext, prefix: str, tuning: modeling.TuningResult
) -> tuple[dict[str, Any], dict[str, float]]:
    """Log an Optuna search's outcome; its parameters and best validation score for the run."""
    context.log.info(
        f"optuna {tuning.study_name}: {tuning.n_trials} trials ({tuning.n_pruned} pruned), "
        f"best validation ROC-AUC {tuning.cv_auc:.4f}"
    )
    params = {
        **{f"{prefix}_{k}": v for k, v in tuning.params.items()},
        "n_trials": tuning.n_trials,
        "n_pruned": tuning.n_pruned,
        "optuna_study": tuning.study_name,
    }
    return params, {"tuning_best_validation_auc": tuning.cv_auc}


def build_baseline(spec: DatasetSpec) -> dg.AssetsDefinition:
    @candidate_asset(
        spec,
        "baseline",
        {"sklearn"},
        f"Class-weighted logistic regression on {spec.name}: the simplest candidate, and the "
        "one that fixes the run's evaluation protocol.",
    )
    def baseline_model(
        context: dg.AssetExecutionContext,
        config: BaselineConfig,
        mlflow: MLflowResource,
        training_set: TrainingSet,
    ) -> dg.Output[Candidate]:
        protocol = config.protocol(spec)
        recipe = recipes.baseline_recipe(training_set, protocol, config.budget())
        return fit_and_log(
            context,
            spec,
            mlflow,
            training_set,
            protocol,
            "baseline",
            recipe.pipeline,
            recipe.params,
        )

    return baseline_model


def build_xgboost(spec: DatasetSpec) -> dg.AssetsDefinition:
    @candidate_asset(
        spec,
        "xgboost",
        {"xgboost", "optuna"},
        f"XGBoost on {spec.name} tuned by Optuna (seeded TPE, median pruning, early stopping) "
        "on the protocol's validation folds.",
    )
    def xgboost_model(
        context: dg.AssetExecutionContext,
        config: XGBoostConfig,
        settings: ChurnSettings,
        mlflow: MLflowResource,
        training_set: TrainingSet,
        baseline: Candidate,
    ) -> dg.Output[Candidate]:
        protocol = baseline.protocol
        split = protocol.split(training_set, training_set.frame())
        recipe = recipes.xgboost_recipe(
            training_set,
            split,
            protocol,
            config.budget(settings.optuna_storage),
            f"churn-{spec.name}-{training_set.version}-seed{protocol.seed}",
        )
        assert recipe.tuning is not None
        return fit_and_log(
            context,
            spec,
            mlflow,
            training_set,
            protocol,
            "xgboost",
            recipe.pipeline,
            *tuned(context, "xgb", recipe.tuning),
        )

    return xgboost_model


def build_deep(spec: DatasetSpec) -> dg.AssetsDefinition:
    @candidate_asset(
        spec,
        "deep",
        {"jax", "optuna"},
        f"Deep tabular model on {spec.name}: an MLP with learned embeddings of the categorical "
        "features, trained with JAX, tuned by Optuna on the protocol's validation folds with "
        "early stopping; explains itself by integrated gradients.",
    )
    def deep_model(
        context: dg.AssetExecutionContext,
        config: DeepConfig,
        settings: ChurnSettings,
        mlflow: MLflowResource,
        training_set: TrainingSet,
        baseline: Candidate,
    ) -> dg.Output[Candidate]:
        protocol = baseline.protocol
        split = protocol.split(training_set, training_set.frame())
        recipe = recipes.deep_recipe(
            training_set,
            split,
            protocol,
            config.budget(settings.optuna_storage),
            f"churn-{spec.name}-{training_set.version}-deep-seed{protocol.seed}",
        )
        assert recipe.tuning is not None
        return fit_and_log(
            context,
            spec,
            mlflow,
            training_set,
            protocol,
            "deep",
            recipe.pipeline,
            *tuned(context, "deep", recipe.tuning),
        )

    return deep_model
