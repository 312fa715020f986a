"""sources stage: a dataset's raw table under its contract, its quality report, its landing."""

import dagster as dg

from churn_assets.defs.sources.quality import build_quality_report
from churn_assets.defs.sources.raw import build_raw_asset
from churn_assets.lib.datasets import DatasetSpec


def build(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    return [build_raw_asset(spec), build_quality_report(spec)]
