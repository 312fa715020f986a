"""monitoring stage: scores, drift and realized performance; jobs, sensors, schedules, alerts."""

import dagster as dg

from churn_assets.defs.monitoring.drift import build_drift
from churn_assets.defs.monitoring.performance import build_performance
from churn_assets.defs.monitoring.scoring import build_scores
from churn_assets.lib.datasets import DatasetSpec


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    performance = [build_performance(spec)] if spec.kind == "events" else []
    return [build_scores(spec), build_drift(spec), *performance]
