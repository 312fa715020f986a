"""serving stage: the online feature store the API reads and, for an events dataset, the event
stream that keeps online features live, per dataset."""

import dagster as dg

from churn_assets.defs.serving.online_features import build_online_features
from churn_assets.defs.serving.stream import build_event_stream
from churn_assets.lib.datasets import DatasetSpec


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    stream = [build_event_stream(spec)] if spec.kind == "events" else []
    return [build_online_features(spec), *stream]
