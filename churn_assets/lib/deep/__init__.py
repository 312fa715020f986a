"""Deep tabular churn model: an MLP with categorical embeddings, trained with JAX.

Public API for the training assets. Nothing here imports JAX: only fitting does (lazily, in
``churn_assets.lib.deep.training``), so scoring and explaining a saved model stay numpy-only.
"""

from churn_assets.lib.deep.estimator import (
    DeepTabularClassifier,
    contributions,
    deep_pipeline,
    make_deep_preprocessor,
)
from churn_assets.lib.deep.tuning import tune_deep

__all__ = [
    "DeepTabularClassifier",
    "contributions",
    "deep_pipeline",
    "make_deep_preprocessor",
    "tune_deep",
]
