"""Deep tabular churn model: an MLP with categorical embeddings, trained with JAX.

Public API for the training assets; everything here imports without JAX.
"""

from churn_assets.lib.deep.estimator import (
    DeepTabularClassifier,
    contributions,
    deep_pipeline,
    make_deep_preprocessor,
)

__all__ = [
    "DeepTabularClassifier",
    "contributions",
    "deep_pipeline",
    "make_deep_preprocessor",
]
