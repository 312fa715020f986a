"""training stage: candidates, selection, promotion gate and explanations, per dataset."""

import dagster as dg

from churn_assets.defs.training.candidates import build_baseline, build_deep, build_xgboost
from churn_assets.defs.training.explanations import build_explanations
from churn_assets.defs.training.promotion import build_promotion
from churn_assets.defs.training.selection import build_selection
from churn_assets.lib.datasets import DatasetSpec

CANDIDATES = ("baseline", "xgboost", "deep")


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    return [
        build_baseline(spec),
        build_xgboost(spec),
        build_deep(spec),
        build_selection(spec, list(CANDIDATES)),
        build_promotion(spec),
        build_explanations(spec),
    ]
