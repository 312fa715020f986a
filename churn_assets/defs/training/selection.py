"""Model selection: every candidate of a run is compared, the validation winner is registered.

The choice reads validation figures only (cross-validation inside the training part for a
snapshot, the time-ordered validation months for events); test figures are shown beside them so
nobody wonders why the registered model is not the one with the best test score, but they never
decide. The promotion gate then compares the registered challenger with the champion on the
same test rows.
"""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from churn_assets import metadata
from churn_assets.defs.training.candidates import GROUP, MLFLOW_POOL
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.metadata import md_table
from churn_assets.lib.modeling.protocol import Candidate, RegisteredModel, choose, comparison_rows
from churn_assets.resources import MLflowResource
from churn_assets.settings import OWNER_ML

TARGET_CHECK = "meets_target_auc"


def build_selection(spec: DatasetSpec, candidates: list[str]) -> dg.AssetsDefinition:
    name = spec.key("model_selection")

    @dg.asset(
        name=name,
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"mlflow"},
        ins={c: dg.AssetIn(key=spec.key(f"{c}_model")) for c in candidates},
        pool=MLFLOW_POOL,
        tags={"dataset": spec.name},
        check_specs=[
            dg.AssetCheckSpec(
                TARGET_CHECK,
                asset=name,
                description=f"The registered model's test ROC-AUC ≥ {spec.targets.roc_auc} "
                "(the dataset's declared target).",
            )
        ],
        description=f"Compares {', '.join(candidates)} on validation ROC-AUC and registers the "
        f"winner as a new version of {registry.registered_model_name(spec.name)}.",
    )
    def model_selection(
        context: dg.AssetExecutionContext, mlflow: MLflowResource, **fitted: Candidate
    ) -> Iterator[dg.Output[RegisteredModel] | dg.AssetCheckResult]:
        ordered = [fitted[c] for c in candidates]
        chosen = choose(ordered)
        comparison = comparison_rows(ordered, chosen)
        version = registry.register(
            spec.name,
            chosen,
            {
                "selection.validation_auc": f"{chosen.validation_auc:.4f}",
                "selection.candidates": ", ".join(
                    f"{c.name}={c.validation_auc:.4f}" for c in ordered
                ),
            },
        )
        for candidate in ordered:
            registry.tag_run(
                candidate.run_id,
                {
                    "selection.chosen": str(candidate.name == chosen.name).lower(),
                    "selection.registered_version": version,
                },
            )
        context.log.info(
            f"{spec.name}: registered {chosen.name} as version {version} "
            f"(validation ROC-AUC {chosen.validation_auc:.4f})"
        )
        table = pl.DataFrame(comparison)
        yield dg.Output(
            RegisteredModel(spec.name, chosen.name, version, chosen, comparison),
            metadata={
                "chosen": chosen.name,
                "model_version": version,
                "validation_roc_auc": round(chosen.validation_auc, 4),
                "test_roc_auc": round(chosen.test_auc, 4),
                "comparison": metadata.table(table),
                "comparison_md": dg.MetadataValue.md(md_table(table)),
                "mlflow_run_id": chosen.run_id,
                "training_set_version": chosen.training_set_version,
            },
        )
        yield dg.AssetCheckResult(
            check_name=TARGET_CHECK,
            passed=bool(chosen.test_auc >= spec.targets.roc_auc),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"roc_auc": round(chosen.test_auc, 4), "target": spec.targets.roc_auc},
        )

    return model_selection
