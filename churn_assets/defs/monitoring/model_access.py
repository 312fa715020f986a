"""What monitoring needs from the registry: the champion, its training reference, its metrics.

Scoring pins the exact model version it used (stored with every score row); drift and
performance resolve *that* version again rather than "the current champion", so a promotion
between scoring and drift never compares a month against the wrong model's reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from churn_assets.lib.training_set import DATA_FILE

RETAIL_MODEL_NAME = "churn-retail"
CHAMPION_ALIAS = "champion"
TRAINING_SET_PATH_TAG = "training_set_path"
TRAINING_SET_VERSION_TAG = "training_set_version"
EVAL_AUC_METRICS = ("test_roc_auc", "roc_auc")
EVAL_LIFT_METRICS = ("test_top_decile_lift", "top_decile_lift")


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version plus the run that produced it (tags and metrics)."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @cached_property
    def model(self) -> Any:
        """The logged estimator (a ``ChurnClassifier``: raw feature rows in, probabilities out)."""
        import mlflow.sklearn

        return mlflow.sklearn.load_model(self.uri)

    @property
    def training_set_path(self) -> Path:
        path = self.tags.get(TRAINING_SET_PATH_TAG)
        if not path:
            raise LookupError(
                f"{self.uri}: run {self.run_id} has no '{TRAINING_SET_PATH_TAG}' tag, so the "
                "drift reference (its training set) cannot be recovered"
            )
        return Path(path)

    @property
    def training_set_label(self) -> str:
        return self.tags.get(TRAINING_SET_VERSION_TAG, str(self.training_set_path))

    def reference_frame(self) -> pl.DataFrame:
        return pl.read_parquet(self.training_set_path / DATA_FILE)

    def evaluation_metric(self, candidates: tuple[str, ...]) -> float | None:
        return next((self.metrics[m] for m in candidates if m in self.metrics), None)


def _describe(client: Any, name: str, version: str) -> ModelVersion:
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    return ModelVersion(
        name=name,
        version=str(mv.version),
        run_id=mv.run_id,
        tags={**run.data.tags, **(mv.tags or {})},
        metrics=dict(run.data.metrics),
    )


def champion(name: str = RETAIL_MODEL_NAME) -> ModelVersion:
    """The version behind the ``champion`` alias; fails with a hint when training never ran."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException as exc:
        raise LookupError(
            f"no '{CHAMPION_ALIAS}' alias on registered model '{name}': materialize the "
            "training group first (it promotes the first model that passes the gate)"
        ) from exc
    return _describe(client, name, str(mv.version))


def model_version(name: str, version: str) -> ModelVersion:
    from mlflow import MlflowClient

    return _describe(MlflowClient(), name, version)
