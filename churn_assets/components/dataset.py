"""A declared dataset as a Dagster component: one ``defs.yaml`` gives the whole graph.

Each ``churn_assets/defs/datasets/<name>/defs.yaml`` instantiates :class:`ChurnDataset` with a
:class:`~churn_assets.lib.datasets.DatasetSpec` as its attributes; the component builds every
stage for it (raw table, quality report, dbt features, training set, candidates, selection,
promotion, SHAP, scores, drift, realized performance, the business decisions, the resampled
evaluation, jobs, sensors and the schedule), keyed
``<name>_*``. Adding a dataset adds a folder, not code. ``CHURN_DATASETS`` (comma-separated
names) loads only some of the declared datasets.
"""

import os

import dagster as dg
from pydantic import BaseModel

from churn_assets.defs import (
    business,
    evaluation,
    features,
    monitoring,
    serving,
    sources,
    training,
)
from churn_assets.defs.features.dbt_models import build_dbt_assets
from churn_assets.defs.monitoring.jobs import build_jobs, build_schedule
from churn_assets.defs.monitoring.sensors import build_after_ingest_sensor, build_retraining_sensor
from churn_assets.defs.sources.landing import build_ingest_failure_sensor, build_landing_sensor
from churn_assets.lib.datasets import DatasetSpec


def build_dataset_defs(spec: DatasetSpec) -> dg.Definitions:
    """Every definition of one dataset's graph."""
    dbt_models = build_dbt_assets(spec)
    jobs = build_jobs(spec, dbt_models)
    sensors = [
        build_landing_sensor(spec, jobs.ingest),
        build_ingest_failure_sensor(spec, jobs.ingest),
        build_retraining_sensor(spec, jobs),
    ]
    if spec.kind == "events":
        sensors.append(build_after_ingest_sensor(spec, jobs))
    return dg.Definitions(
        assets=[
            *sources.build(spec),
            dbt_models,
            *features.build(spec),
            *training.build(spec),
            *monitoring.build(spec),
            *serving.build(spec),
            *business.build(spec),
            *evaluation.build(spec),
        ],
        jobs=[*jobs.all(), *business.build_jobs(spec)],
        sensors=sensors,
        schedules=[build_schedule(spec, jobs)],
    )


def selected(name: str) -> bool:
    """Whether ``CHURN_DATASETS`` (unset: every declared dataset) asks for this dataset."""
    wanted = os.environ.get("CHURN_DATASETS", "")
    return not wanted or name in {n.strip() for n in wanted.split(",")}


class ChurnDataset(dg.Component):
    """A churn dataset declared in YAML: kind, files, column mapping, rules and knobs.

    The attributes are a :class:`DatasetSpec` (validated with its own messages, dates and
    nested sections included); paths may use ``$VARIABLES`` from the environment.
    """

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec

    @classmethod
    def get_model_cls(cls) -> type[DatasetSpec]:
        return DatasetSpec

    @classmethod
    def load(cls, attributes: BaseModel | None, context: dg.ComponentLoadContext) -> "ChurnDataset":
        return cls(DatasetSpec.model_validate(attributes.model_dump() if attributes else {}))

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_dataset_defs(self.spec) if selected(self.spec.name) else dg.Definitions()
