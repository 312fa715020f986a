"""Resampled evaluation of every candidate recipe: how much a dataset's test ROC-AUC moves
with the split, beyond the one hold-out a training run reports.

The protocol's kind chooses the resampling: repeated stratified splits (one per seed) for a
random protocol, rolling origin (one model per test month, trained on the months matured
before it) out of time. Each round runs the training run's own recipes (tuning inside the
training part, calibration, the cost threshold) through ``lib.modeling.resampling``.
"""

import time

import dagster as dg
import polars as pl
from pydantic import Field

from churn_assets import metadata
from churn_assets.defs.training.candidates import MLFLOW_POOL
from churn_assets.defs.training.configs import BaselineConfig, DeepConfig, XGBoostConfig
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.metadata import md_table
from churn_assets.lib.modeling import recipes, resampling
from churn_assets.lib.training_set import TrainingSet
from churn_assets.settings import OWNER_ML

GROUP = "evaluation"
KINDS = {"random": "repeated_split", "out_of_time": "rolling_origin"}


class EvaluationConfig(dg.Config):
    """How many rounds (seeds 0 .. ``n_seeds`` - 1 for repeated splits, the newest
    ``n_origins`` matured months as test months out of time) of which candidates, each with
    its training config: the protocol on ``baseline``, the tuning budgets on ``xgboost`` and
    ``deep``, with a training run's defaults (the same trials)."""

    n_seeds: int = 10
    n_origins: int = 7
    candidates: list[str] = Field(
        default=list(recipes.CANDIDATES), description="candidates to evaluate, in this order"
    )
    baseline: BaselineConfig = BaselineConfig()
    xgboost: XGBoostConfig = XGBoostConfig()
    deep: DeepConfig = DeepConfig()

    def budgets(self) -> dict[str, recipes.Budget]:
        """Each candidate's budget; Optuna studies stay in memory (nothing to resume)."""
        every = {
            recipes.BASELINE: self.baseline.budget(),
            recipes.XGBOOST: self.xgboost.budget(None),
            recipes.DEEP: self.deep.budget(None),
        }
        unknown = sorted(set(self.candidates) - set(every))
        if unknown:
            raise ValueError(f"unknown candidates {unknown}: one of {', '.join(every)}")
        return {name: every[name] for name in self.candidates}

    def rounds(self, protocol_kind: str) -> int:
        return self.n_seeds if protocol_kind == "random" else self.n_origins


def build_resampled_evaluation(spec: DatasetSpec) -> dg.AssetsDefinition:
    kind = KINDS[spec.protocol]
    what = (
        "stratified 80/20 splits, one per seed"
        if spec.protocol == "random"
        else "rolling origin: one model per test month, trained on the months matured before it"
    )

    @dg.asset(
        name=spec.key(f"{kind}_evaluation"),
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"sklearn", "xgboost", "jax"},
        ins={"training_set": dg.AssetIn(key=spec.key("training_set"))},
        pool=MLFLOW_POOL,
        tags={"dataset": spec.name, "protocol": spec.protocol},
        description=f"The whole training protocol of {spec.name} (tuning included) on {what}: "
        "mean, standard deviation and range of test ROC-AUC per candidate and for the "
        "validation-selected one. Slow: `make evaluate`, outside the main job.",
    )
    def resampled_evaluation(
        context: dg.AssetExecutionContext, config: EvaluationConfig, training_set: TrainingSet
    ) -> dg.Output[resampling.Resampled]:
        started = time.perf_counter()
        protocol = config.baseline.protocol(spec)
        frame = training_set.frame()
        rounds = resampling.rounds_for(protocol, frame, training_set, config.rounds(spec.protocol))
        result = resampling.evaluate_rounds(
            training_set,
            frame,
            rounds,
            config.budgets(),
            study_prefix=f"eval-{spec.name}-{training_set.version}",
            log=context.log.info,
        )
        summary = pl.DataFrame(result.summary).with_columns(
            meets_target=pl.col("mean_test_roc_auc") >= spec.targets.roc_auc
        )
        selected = summary.filter(pl.col("candidate") == resampling.SELECTED).row(0, named=True)
        plot = resampling.resampling_plot(result, spec.targets.roc_auc)
        return dg.Output(
            result,
            metadata={
                "summary": metadata.table(summary),
                "summary_md": dg.MetadataValue.md(md_table(summary)),
                "rounds": metadata.table(pl.DataFrame(result.rounds), max_rows=500),
                "plots": metadata.plots({f"{kind}.png": plot}),
                "selected_mean_test_roc_auc": round(selected["mean_test_roc_auc"], 4),
                "selected_std_test_roc_auc": round(selected["std_test_roc_auc"], 4),
                "target_roc_auc": spec.targets.roc_auc,
                "n_rounds": len(rounds),
                "training_set_version": training_set.version,
                "seconds": round(time.perf_counter() - started, 1),
            },
        )

    return resampled_evaluation
