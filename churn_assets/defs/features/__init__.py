"""features stage: the dbt feature models, per-date features (events) and training sets."""

import dagster as dg

from churn_assets.defs.features.monthly import build_features_monthly
from churn_assets.defs.features.training_sets import build_training_set
from churn_assets.lib.datasets import DatasetSpec


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    """Everything but the dbt models, which jobs select on their own."""
    monthly = [build_features_monthly(spec)] if spec.kind == "events" else []
    return [*monthly, build_training_set(spec)]
