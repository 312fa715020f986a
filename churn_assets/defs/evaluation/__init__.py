"""evaluation stage: the whole training protocol repeated on many splits, per dataset.

Slow on purpose (every candidate is tuned again on every round), so the group stays out of the
main job: ``make evaluate`` materializes it on top of a finished ``make run``.
"""

import dagster as dg

from churn_assets.defs.evaluation.resampled import GROUP, build_resampled_evaluation
from churn_assets.lib.datasets import DatasetSpec

__all__ = ["GROUP", "build"]


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    return [build_resampled_evaluation(spec)]
