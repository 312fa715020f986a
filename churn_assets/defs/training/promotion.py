"""Champion/challenger gate: the registered version is ``challenger``; it becomes ``champion``
if sane and better than the current champion on the same test rows."""

import dagster as dg
import numpy as np
from sklearn.metrics import roc_auc_score

from churn_assets.defs.training.candidates import GROUP, MLFLOW_POOL
from churn_assets.defs.training.configs import PromotionConfig
from churn_assets.lib import promotion
from churn_assets.lib import registry_models as registry
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.evaluation import expected_calibration_error
from churn_assets.lib.modeling.protocol import RegisteredModel
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import AlertNotifier, MLflowResource
from churn_assets.settings import OWNER_ML


def build_promotion(spec: DatasetSpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.key("model_promotion"),
        group_name=GROUP,
        owners=[OWNER_ML],
        kinds={"mlflow"},
        ins={
            "training_set": dg.AssetIn(key=spec.key("training_set")),
            "registered": dg.AssetIn(key=spec.key("model_selection")),
        },
        pool=MLFLOW_POOL,
        tags={"dataset": spec.name},
        description="Champion/challenger gate: the new version is 'challenger'; it becomes "
        "'champion' if sane and better than the current champion on the same test rows.",
    )
    def model_promotion(
        context: dg.AssetExecutionContext,
        config: PromotionConfig,
        mlflow: MLflowResource,
        notifier: AlertNotifier,
        training_set: TrainingSet,
        registered: RegisteredModel,
    ) -> dg.Output[dict[str, object]]:
        version = registered.version
        split = registered.candidate.protocol.split(training_set, training_set.frame())
        challenger = registry.load_model_version(spec.name, version)
        p = challenger.model.predict_proba(split.x_test)[:, 1]
        finite = np.nan_to_num(p, nan=0.5)
        challenger_auc = float(roc_auc_score(split.y_test, finite))
        challenger_ece = expected_calibration_error(split.y_test, finite)
        current = registry.champion_version(spec.name)
        champion_auc, champion_note = None, "none"
        if current is not None and current != version:
            champion = registry.load_model_version(spec.name, current)
            missing = set(champion.features) - set(split.x_test.columns)
            if missing:
                champion_note = f"v{current} cannot score this data (missing {sorted(missing)})"
            else:
                champion_auc = float(
                    roc_auc_score(split.y_test, champion.model.predict_proba(split.x_test)[:, 1])
                )
                champion_note = f"v{current}"
        elif current == version:
            champion_note = f"v{current} (this version, re-evaluated)"
        decision = promotion.decide_promotion(
            challenger_predictions=p,
            challenger_auc=challenger_auc,
            challenger_ece=challenger_ece,
            challenger_features=challenger.features,
            expected_features=list(training_set.features),
            champion_auc=champion_auc,
            margin=config.promotion_margin,
            max_calibration_error=config.max_calibration_error,
            no_champion_reason="no champion yet: first model"
            if current is None
            else f"champion {champion_note}",
        )
        promoted = decision.promote or current == version
        verdict = "champion" if promoted else "challenger"
        reasons = "; ".join(decision.reasons)
        registry.set_alias_and_tags(
            spec.name,
            version,
            registry.CHALLENGER,
            {
                "promotion.decision": verdict,
                "promotion.reasons": reasons,
                "promotion.champion_before": champion_note,
            },
        )
        if decision.promote:
            registry.set_alias_and_tags(spec.name, version, registry.CHAMPION, {})
        registry.tag_run(
            registered.candidate.run_id,
            {"promotion.decision": verdict, "promotion.reasons": reasons},
        )
        payload: dict[str, object] = {
            "dataset": spec.name,
            "model": registry.registered_model_name(spec.name),
            "version": version,
            "candidate": registered.name,
            "promoted": promoted,
            "champion_before": champion_note,
            "challenger_auc": challenger_auc,
            "champion_auc": champion_auc,
            "reasons": decision.reasons,
        }
        notifier.notify("promotion_decision", payload)
        context.log.info(f"promotion {spec.name} v{version}: {verdict}")
        champion_now = version if promoted else current
        return dg.Output(
            {**payload, "champion_version": champion_now},
            metadata={
                "decision": verdict,
                "decision_table": dg.MetadataValue.md(decision.markdown()),
                "challenger_version": version,
                "champion_version": str(champion_now),
                "champion_before": champion_note,
                "challenger_auc": round(challenger_auc, 4),
                "challenger_ece": round(challenger_ece, 4),
            },
        )

    return model_promotion
