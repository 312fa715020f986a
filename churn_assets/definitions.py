"""The code location: every declared dataset's graph (components under ``defs/datasets``), the
shared definitions under ``defs/`` and the resources, built from the settings."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from churn_assets.components.dataset import build_dataset_defs
from churn_assets.defs.features.project import dbt_resource
from churn_assets.defs.monitoring.alerts import run_failure_alert_sensor
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import build_resources
from churn_assets.settings import ChurnSettings, settings_from_env


def build_definitions(
    settings: ChurnSettings, datasets: Sequence[DatasetSpec] | None = None
) -> dg.Definitions:
    """The whole code location for these settings: every declaration under ``defs/``, or the
    given datasets (tests pass their own settings and datasets instead of patching the
    environment or the declarations)."""
    graph = (
        dg.load_from_defs_folder(path_within_project=Path(__file__).resolve().parent)
        if datasets is None
        else dg.Definitions.merge(
            *(build_dataset_defs(spec) for spec in datasets),
            dg.Definitions(sensors=[run_failure_alert_sensor]),
        )
    )
    return dg.Definitions.merge(
        graph, dg.Definitions(resources={**build_resources(settings), "dbt": dbt_resource()})
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(settings_from_env())
