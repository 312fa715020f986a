"""Time is the axis of an events dataset: one partition per observation date (a month start).

The calendar comes from the data (see :func:`churn_assets.lib.datasets.observation_calendar`),
so the partitions are dynamic: the raw asset adds the dates its load makes observable and
removes the ones past the data (a replay cut), and a month without data never becomes a
partition that would score everyone as churned.
"""

from __future__ import annotations

import dagster as dg

from churn_assets.lib.datasets import DatasetSpec


def partitions_name(spec: DatasetSpec) -> str:
    return spec.key("observation_dates")


def observation_dates(spec: DatasetSpec) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=partitions_name(spec))
