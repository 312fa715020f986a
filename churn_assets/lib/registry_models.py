"""MLflow tracking and registry helpers shared by training, promotion and (later) scoring.

Each logged model run carries the TrainingSet reference as tags (``training_set.*``), so the
registry alone answers "which data was the champion trained on" — monitoring uses that as
its drift reference. Models are ``mlflow.sklearn`` flavours of :class:`ChurnClassifier`
whose pyfunc ``predict`` is ``predict_proba`` on raw feature rows.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

# MLflow would otherwise write a telemetry id under $HOME/.config on first use.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd

from churn_assets.lib.modeling import ChurnClassifier
from churn_assets.lib.modeling.protocol import Candidate
from churn_assets.lib.training_set import TrainingSet

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_NAME = "model"
_TRUSTED_PREFIXES = ("churn_assets.lib.", "numpy.", "sklearn.", "xgboost.", "scipy.")
_REQUIREMENTS = ("mlflow", "scikit-learn", "xgboost-cpu", "numpy", "pandas", "scipy", "polars")


def registered_model_name(dataset: str) -> str:
    return f"churn-{dataset}"


def experiment_name(dataset: str) -> str:
    return f"churn-{dataset}"


def training_set_tags(ts: TrainingSet) -> dict[str, str]:
    return {
        "training_set.dataset": ts.dataset,
        "training_set.version": ts.version,
        "training_set.path": str(ts.path),
        "training_set.label": ts.label,
        "training_set.entity": ts.entity,
        "training_set.time_column": ts.time_column,
        "training_set.numeric_features": json.dumps(list(ts.numeric_features)),
        "training_set.categorical_features": json.dumps(list(ts.categorical_features)),
    }


def _trusted_types(model: ChurnClassifier) -> list[str]:
    """Types skops must accept when loading the model (MLflow 3 saves sklearn with skops).

    Only our own model classes and the numeric libraries are trusted; anything else in the
    object graph is a bug, so it fails loudly instead of being whitelisted blindly.
    """
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    unexpected = [t for t in untrusted if not t.startswith(_TRUSTED_PREFIXES)]
    if unexpected:
        raise TypeError(f"model holds types outside the trusted libraries: {unexpected}")
    return untrusted


def _pip_requirements() -> list[str]:
    """Pinned from the running environment; skips MLflow's slow requirement inference."""
    return [f"{name}=={version(name)}" for name in _REQUIREMENTS]


@dataclass(frozen=True)
class LoggedModel:
    run_id: str
    model_uri: str


def log_model_run(
    *,
    experiment_id: str,
    run_name: str,
    model: ChurnClassifier,
    ts: TrainingSet,
    input_example: pd.DataFrame,
    params: dict[str, Any],
    metrics: dict[str, float],
    figures: dict[str, bytes],
    tags: dict[str, str],
) -> LoggedModel:
    """One MLflow run: params, metrics, PNGs, provenance, and the pyfunc-loadable model."""
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags({**training_set_tags(ts), **tags})
        mlflow.log_params({k: v for k, v in params.items() if v is not None})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        log_pngs(figures, "plots")
        if ts.provenance_file.exists():
            mlflow.log_artifact(str(ts.provenance_file), "training_set")
        signature = infer_signature(input_example, model.predict_proba(input_example))
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_NAME,
            signature=signature,
            input_example=input_example,
            pyfunc_predict_fn="predict_proba",
            pip_requirements=_pip_requirements(),
            skops_trusted_types=_trusted_types(model),
            tags=tags,
        )
    return LoggedModel(run_id=run.info.run_id, model_uri=info.model_uri)


def register(dataset: str, candidate: Candidate, tags: dict[str, str]) -> str:
    """Register a logged candidate as a new version of ``churn-<dataset>``; return the version.

    The version carries its run's tags (``training_set.*``), so the registry alone answers
    "trained on what", plus ``candidate`` and the selection's tags.
    """
    import mlflow
    from mlflow import MlflowClient

    name = registered_model_name(dataset)
    version = mlflow.register_model(candidate.model_uri, name).version
    client = MlflowClient()
    run_tags = client.get_run(candidate.run_id).data.tags
    for key, value in {
        **{k: v for k, v in run_tags.items() if k.startswith("training_set.")},
        "candidate": candidate.name,
        **tags,
    }.items():
        client.set_model_version_tag(name, str(version), key, value)
    return str(version)


def log_pngs_to_run(run_id: str, figures: dict[str, bytes], artifact_dir: str) -> None:
    """Add plots to a finished run (SHAP plots join the model run they explain)."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        log_pngs(figures, artifact_dir)


def tag_run(run_id: str, tags: dict[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def load_logged_model(model_uri: str) -> ChurnClassifier:
    import mlflow

    return mlflow.sklearn.load_model(model_uri)


def log_pngs(figures: dict[str, bytes], artifact_dir: str) -> None:
    """Write PNG bytes to a temp folder and log them under ``artifact_dir`` of the active run."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        for name, png in figures.items():
            Path(tmp, name).write_bytes(png)
        mlflow.log_artifacts(tmp, artifact_dir)


def champion_version(dataset: str) -> str | None:
    """Current champion version number, or ``None`` if the alias (or the model) is missing."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        return str(
            client.get_model_version_by_alias(registered_model_name(dataset), CHAMPION).version
        )
    except mlflow.exceptions.MlflowException:
        return None


@dataclass(frozen=True)
class Champion:
    """What scoring and monitoring need: the model, its inputs and its reference data."""

    dataset: str
    model: ChurnClassifier
    version: str
    run_id: str
    features: list[str]
    numeric_features: list[str]
    categorical_features: list[str]
    training_set_version: str
    training_set_path: Path


def load_model_version(dataset: str, version_: str) -> Champion:
    """Load a registered version with the TrainingSet reference recorded on its run.

    A registered version never changes, so it is loaded once per process and registry: the
    monitoring of many months in one process (``make run``, a backfill) pays for it once.
    """
    import mlflow

    return _load_version(mlflow.get_tracking_uri(), mlflow.get_registry_uri(), dataset, version_)


@lru_cache(maxsize=16)
def _load_version(tracking_uri: str, registry_uri: str, dataset: str, version_: str) -> Champion:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    name = registered_model_name(dataset)
    mv = client.get_model_version(name, version_)
    run_id = str(mv.run_id)
    tags = client.get_run(run_id).data.tags
    model: ChurnClassifier = mlflow.sklearn.load_model(f"models:/{name}/{version_}")
    return Champion(
        dataset=dataset,
        model=model,
        version=str(mv.version),
        run_id=run_id,
        features=model.features,
        numeric_features=list(model.numeric_features),
        categorical_features=list(model.categorical_features),
        training_set_version=tags["training_set.version"],
        training_set_path=Path(tags["training_set.path"]),
    )


def load_champion(dataset: str) -> Champion | None:
    """The model behind ``models:/churn-<dataset>@champion`` (``None`` before the first one).

    Call ``MLflowResource.setup()`` (or ``mlflow.set_tracking_uri``) first. The returned
    :class:`ChurnClassifier` scores raw rows built with
    :func:`churn_assets.lib.modeling.feature_frame`; ``mlflow.pyfunc.load_model`` on the same
    URI gives the generic pyfunc (``predict`` → [p(stay), p(churn)]).
    """
    current = champion_version(dataset)
    return None if current is None else load_model_version(dataset, current)


def set_alias_and_tags(dataset: str, version_: str, alias: str, tags: dict[str, str]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    name = registered_model_name(dataset)
    client.set_registered_model_alias(name, alias, version_)
    for key, value in tags.items():
        client.set_model_version_tag(name, version_, key, value)
