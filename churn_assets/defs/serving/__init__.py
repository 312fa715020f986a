"""serving stage: the online feature store the API and the stream read, per dataset."""

import dagster as dg

from churn_assets.defs.serving.online_features import build_online_features
from churn_assets.lib.datasets import DatasetSpec


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    return [build_online_features(spec)]
