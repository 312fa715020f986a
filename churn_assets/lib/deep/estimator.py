"""The deep tabular churn model as an sklearn estimator and pipeline.

:func:`deep_pipeline` returns the same shape of object as the logistic and XGBoost pipelines
(``features`` preprocessing, then ``model``), so it drops into ``ChurnClassifier``,
``fit_calibrated`` and the MLflow logging unchanged. Fitting imports JAX lazily; the fitted
estimator holds only numpy arrays and Python scalars, so skops can save and load it and
scoring (``predict_proba``) and explaining (:meth:`DeepTabularClassifier.contributions`) run
in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from churn_assets.lib.deep import network
from churn_assets.lib.modeling import SkewedLog1p

# Ordinal code of a category the encoder did not see at fit time.
UNKNOWN_CODE = -1
# Gauss-Legendre nodes for integrated gradients: the SiLU network is smooth, so 32 nodes keep
# the completeness error far below the contributions' own size (checked in the tests).
DEFAULT_IG_STEPS = 32


def make_deep_preprocessor(numeric: Sequence[str], categorical: Sequence[str]) -> ColumnTransformer:
    """Numerics: impute median -> log1p(skewed) -> standardise; categoricals: ordinal codes.

    Output columns are the numerics then the categorical codes, in the given order, which is
    also ``ChurnClassifier.features`` order: contribution column ``i`` is raw feature ``i``.
    Unknown (and missing) categories become :data:`UNKNOWN_CODE`; the network maps them to a
    reserved embedding row.
    """
    numeric_steps = Pipeline(
        [
            # A window unknown on every fit row (left-censored: an early validation fold)
            # stays a column, so the encoded layout never depends on the fit rows.
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("log", SkewedLog1p()),
            ("scale", StandardScaler()),
        ]
    )
    encoder = OrdinalEncoder(
        handle_unknown="use_encoded_value",
        unknown_value=UNKNOWN_CODE,
        encoded_missing_value=UNKNOWN_CODE,
        dtype=np.float64,
    )
    return ColumnTransformer(
        [("num", numeric_steps, list(numeric)), ("cat", encoder, list(categorical))],
        verbose_feature_names_out=False,
        sparse_threshold=0.0,
    )


class DeepTabularClassifier(ClassifierMixin, BaseEstimator):
    """MLP with learned categorical embeddings on ``[numerics..., categorical codes...]``.

    The last ``n_categorical`` input columns are ordinal codes (``-1`` = unknown), the rest
    standardised numerics. Early stopping uses ``eval_set`` when given, else a stratified
    ``validation_fraction`` of the rows; with ``validation_fraction=0`` and no ``eval_set``
    exactly ``max_epochs`` epochs run (the refit after tuning). ``pos_weight`` weights
    churners in the loss, like XGBoost's ``scale_pos_weight``.
    """

    def __init__(
        self,
        n_categorical: int = 0,
        embedding_dim: int = 8,
        hidden_width: int = 128,
        n_layers: int = 2,
        dropout: float = 0.1,
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 16,
        validation_fraction: float = 0.1,
        pos_weight: float = 1.0,
        random_state: int = 0,
    ) -> None:
        self.n_categorical = n_categorical
        self.embedding_dim = embedding_dim
        self.hidden_width = hidden_width
        self.n_layers = n_layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.pos_weight = pos_weight
        self.random_state = random_state

    # ----------------------------------------------------------------------------------------
    # Fitting (JAX)
    # ----------------------------------------------------------------------------------------

    def fit(
        self,
        x: Any,
        y: Any,
        sample_weight: np.ndarray | None = None,
        eval_set: tuple[Any, Any] | None = None,
        eval_sample_weight: np.ndarray | None = None,
    ) -> DeepTabularClassifier:
        """Train; ``sample_weight`` (and ``eval_sample_weight`` for ``eval_set``) weigh rows in
        the loss on top of the class weight, as XGBoost's ``sample_weight`` does."""
        from churn_assets.lib.deep import training

        values = np.asarray(x, dtype=np.float64)
        labels = np.asarray(y).astype(np.int64)
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if set(np.unique(labels)) != {0, 1}:
            raise ValueError("DeepTabularClassifier needs binary 0/1 labels with both classes")
        self.n_features_in_ = values.shape[1]
        self.n_numeric_ = self.n_features_in_ - self.n_categorical
        codes = values[:, self.n_numeric_ :]
        self.cardinalities_ = [int(np.max(column, initial=UNKNOWN_CODE)) + 1 for column in codes.T]
        # Block j of the shared embedding table: its unknown row, then its known categories.
        self.embedding_offsets_ = np.cumsum([0, *(c + 1 for c in self.cardinalities_)])[:-1]
        if eval_set is None and self.validation_fraction > 0:
            fit_idx, val_idx = train_test_split(
                np.arange(len(labels)),
                test_size=self.validation_fraction,
                stratify=labels,
                random_state=self.random_state,
            )
            eval_set = (values[val_idx], labels[val_idx])
            if weights is not None:
                eval_sample_weight, weights = weights[val_idx], weights[fit_idx]
            values, labels = values[fit_idx], labels[fit_idx]
        x_numeric, rows = self._network_columns(values)
        evaluation = None
        if eval_set is not None:
            x_val, rows_val = self._network_columns(np.asarray(eval_set[0], dtype=np.float64))
            evaluation = (x_val, rows_val, np.asarray(eval_set[1]).astype(np.int64))
        trained = training.train(
            x_numeric,
            rows,
            labels,
            offsets=self.embedding_offsets_,
            cardinalities=self.cardinalities_,
            config=training.NetworkConfig(
                embedding_dim=self.embedding_dim,
                hidden_width=self.hidden_width,
                n_layers=self.n_layers,
                dropout=self.dropout,
                learning_rate=self.learning_rate,
                weight_decay=self.weight_decay,
            ),
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            pos_weight=self.pos_weight,
            seed=self.random_state,
            eval_set=evaluation,
            row_weight=weights,
            eval_weight=None if eval_sample_weight is None else np.asarray(eval_sample_weight),
        )
        exported = network.export(
            trained.params, trained.state, rows, self.embedding_offsets_, self.cardinalities_
        )
        self.embedding_ = exported.table
        self.weights_ = exported.weights
        self.biases_ = exported.biases
        self.output_weight_ = exported.output_weight
        self.output_bias_ = exported.output_bias
        self.best_epoch_ = int(trained.best_epoch)
        self.n_epochs_ = int(trained.epochs_run)
        self.validation_loss_ = [float(v) for v in trained.validation_loss]
        self.classes_ = np.array([0, 1])
        # Integrated-gradients reference: training medians (numerics), modes (categories).
        modes = [int(np.argmax(np.bincount(column))) for column in rows.T]
        self.baseline_inputs_ = network.network_inputs(
            np.median(x_numeric, axis=0)[None, :],
            np.array([modes], dtype=np.int64).reshape(1, -1),
            self.embedding_,
        )[0]
        self.baseline_logit_ = float(self._logits_of_inputs(self.baseline_inputs_[None, :])[0])
        return self

    # ----------------------------------------------------------------------------------------
    # Inference and explanations (numpy only)
    # ----------------------------------------------------------------------------------------

    def _network_columns(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Numerics and embedding-table rows: code c of feature j -> row offset_j + 1 + c;
        unknown or unseen codes -> offset_j, the feature's reserved row."""
        x_numeric = values[:, : self.n_numeric_]
        codes = np.nan_to_num(values[:, self.n_numeric_ :], nan=UNKNOWN_CODE).astype(np.int64)
        known = (codes >= 0) & (codes < np.asarray(self.cardinalities_, dtype=np.int64))
        return x_numeric, self.embedding_offsets_ + np.where(known, codes + 1, 0)

    def _inputs(self, x: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        x_numeric, rows = self._network_columns(np.asarray(x, dtype=np.float64))
        return network.network_inputs(x_numeric, rows, self.embedding_)

    def _logits_of_inputs(self, inputs: np.ndarray) -> np.ndarray:
        return network.logits(
            inputs, self.weights_, self.biases_, self.output_weight_, self.output_bias_
        )

    def decision_function(self, x: Any) -> np.ndarray:
        """Log-odds of churn (before any calibrator)."""
        return self._logits_of_inputs(self._inputs(x))

    def predict_proba(self, x: Any) -> np.ndarray:
        p = network.sigmoid(self.decision_function(x))
        return np.column_stack([1.0 - p, p])

    def predict(self, x: Any) -> np.ndarray:
        return (self.decision_function(x) >= 0).astype(np.int64)

    def contributions(self, x: Any, *, n_steps: int = DEFAULT_IG_STEPS) -> np.ndarray:
        """Signed log-odds contribution of every input feature, shape ``(n_rows, n_features)``.

        Integrated gradients from :attr:`baseline_inputs_`; a categorical's contribution is
        the sum over its embedding dimensions. Rows sum to ``decision_function(x) -
        baseline_logit_`` (completeness), so they read like TreeSHAP values with the
        baseline customer's log-odds as the expected value.
        """
        attributions = network.integrated_gradients(
            self._inputs(x),
            self.baseline_inputs_,
            self.weights_,
            self.biases_,
            self.output_weight_,
            n_steps=n_steps,
        )
        numeric = attributions[:, : self.n_numeric_]
        categorical = attributions[:, self.n_numeric_ :].reshape(
            len(attributions), self.n_categorical, self.embedding_dim
        )
        return np.concatenate([numeric, categorical.sum(axis=2)], axis=1)


def deep_pipeline(
    numeric: Sequence[str], categorical: Sequence[str], params: Mapping[str, Any], seed: int
) -> Pipeline:
    """Preprocessing + :class:`DeepTabularClassifier` (step ``model``), like the other models.

    ``params`` are estimator parameters, e.g. :attr:`TuningResult.params` from ``tune_deep``.
    """
    return Pipeline(
        [
            ("features", make_deep_preprocessor(numeric, categorical)),
            (
                "model",
                DeepTabularClassifier(
                    n_categorical=len(categorical), random_state=seed, **dict(params)
                ),
            ),
        ]
    )


def contributions(
    pipeline: Pipeline, x_raw: pd.DataFrame, *, n_steps: int = DEFAULT_IG_STEPS
) -> np.ndarray:
    """Per-row log-odds contributions of the raw features of a fitted :func:`deep_pipeline`.

    ``x_raw`` holds the pipeline's raw columns (``feature_frame`` output); columns of the
    result follow the pipeline's numerics then categoricals, i.e. ``ChurnClassifier.features``.
    """
    encoded = pipeline[:-1].transform(x_raw)
    model: DeepTabularClassifier = pipeline.named_steps["model"]
    return model.contributions(encoded, n_steps=n_steps)
