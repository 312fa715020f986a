"""The deployable model: preprocessing + estimator + calibration in one object, and the
per-feature contributions every explanation (batch SHAP, the API, the stream) reads.

Pure code (no Dagster, no MLflow). MLflow saves these objects with skops, which records each
class by module path: keep them importable from ``churn_assets.lib.modeling``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from xgboost import DMatrix, XGBClassifier

from churn_assets.lib.training_set import TrainingSet

CalibrationMethod = Literal["isotonic", "sigmoid", "none"]


class SkewedLog1p(TransformerMixin, BaseEstimator):
    """log1p on the non-negative, right-skewed columns (counts, money); others untouched.

    Which columns are skewed is learned at fit time, so the pipeline stays generic over
    whatever numeric features the TrainingSet declares.
    """

    def __init__(self, skew_threshold: float = 1.0) -> None:
        self.skew_threshold = skew_threshold

    def fit(self, x: Any, y: Any = None) -> SkewedLog1p:
        values = np.asarray(x, dtype=float)
        mean = np.nanmean(values, axis=0)
        std = np.nanstd(values, axis=0)
        skew = np.nanmean((values - mean) ** 3, axis=0) / np.where(std > 0, std**3, 1.0)
        self.log_mask_ = (np.nanmin(values, axis=0) >= 0) & (skew > self.skew_threshold)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, x: Any) -> np.ndarray:
        values = np.array(x, dtype=float)
        values[:, self.log_mask_] = np.log1p(np.clip(values[:, self.log_mask_], 0, None))
        return values

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


def make_preprocessor(
    numeric: tuple[str, ...], categorical: tuple[str, ...], *, linear: bool
) -> ColumnTransformer:
    """Linear models get impute → log1p(skewed) → scale; trees get raw numerics (NaN-aware)."""
    numeric_steps: Any = (
        Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("log", SkewedLog1p()),
                ("scale", StandardScaler()),
            ]
        )
        if linear
        else "passthrough"
    )
    return ColumnTransformer(
        [
            ("num", numeric_steps, list(numeric)),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64),
                list(categorical),
            ),
        ],
        verbose_feature_names_out=False,
        sparse_threshold=0.0,
    )


class Calibrator(BaseEstimator):
    """Maps raw scores to probabilities; fitted on out-of-fold validation scores only."""

    def __init__(self, method: CalibrationMethod = "isotonic") -> None:
        self.method = method

    def fit(self, scores: np.ndarray, y: np.ndarray) -> Calibrator:
        if self.method == "isotonic":
            self.model_ = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.model_.fit(scores, y)
        else:
            self.model_ = LogisticRegression(C=1e6).fit(_logit(scores)[:, None], y)
        return self

    def transform(self, scores: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            calibrated = self.model_.predict(scores)
        else:
            calibrated = self.model_.predict_proba(_logit(scores)[:, None])[:, 1]
        # Isotonic steps would make ties at 0/1; keep probabilities strictly inside for log-loss.
        return np.clip(calibrated, 1e-6, 1 - 1e-6)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class ChurnClassifier(ClassifierMixin, BaseEstimator):
    """What gets logged and scored: preprocessing + estimator + calibration in one object.

    It takes raw feature rows (the TrainingSet's columns, see :func:`feature_frame`) and
    returns calibrated churn probabilities, so consumers never re-implement preprocessing.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        calibrator: Calibrator | None,
        numeric_features: tuple[str, ...],
        categorical_features: tuple[str, ...],
        threshold: float = 0.5,
        background: np.ndarray | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.calibrator = calibrator
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.threshold = threshold
        self.background = background

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    def raw_scores(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(x[self.features])[:, 1]

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        scores = self.raw_scores(x)
        p = self.calibrator.transform(scores) if self.calibrator is not None else scores
        return np.column_stack([1 - p, p])

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(x)[:, 1] >= self.threshold).astype(int)

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        """Signed contribution of every raw feature to each row's score, in log-odds of the
        uncalibrated estimator (calibration is monotone: it keeps the ranking and the sign).

        XGBoost: exact TreeSHAP from the booster (``pred_contribs``, the values SHAP's
        TreeExplainer computes), one-hot columns summed back to their feature, so a reason reads
        "contract", not "contract_Month-to-month". Logistic regression: the linear SHAP values
        ``coef x (x - mean of the training rows)``. A model that explains itself (the deep
        tabular one) returns its own attributions per input column.
        """
        pre = self.pipeline.named_steps["features"]
        estimator = self.pipeline.named_steps["model"]
        encoded = np.asarray(pre.transform(x[self.features]), dtype=float)
        if hasattr(estimator, "contributions"):
            return np.asarray(estimator.contributions(encoded))
        if isinstance(estimator, XGBClassifier):
            values = estimator.get_booster().predict(
                DMatrix(encoded, missing=np.nan), pred_contribs=True
            )[:, :-1]
        elif isinstance(estimator, LogisticRegression):
            if self.background is None:
                raise ValueError("a linear model needs its training mean (background) to explain")
            values = (encoded - self.background) * estimator.coef_[0]
        else:
            raise TypeError(f"no contributions for {type(estimator).__name__}")
        raw = np.zeros((len(encoded), len(self.features)))
        np.add.at(raw.T, raw_feature_index(pre, len(self.numeric_features)), values.T)
        return raw


def raw_feature_index(pre: ColumnTransformer, n_numeric: int) -> np.ndarray:
    """Index of the raw feature behind every encoded column (numerics first, then dummies)."""
    encoder = pre.named_transformers_["cat"]
    index = list(range(n_numeric))
    for i, categories in enumerate(getattr(encoder, "categories_", [])):
        index += [n_numeric + i] * len(categories)
    return np.asarray(index)


def baseline_pipeline(
    ts: TrainingSet, *, seed: int, c: float = 0.1, balanced: bool = True
) -> Pipeline:
    """L2-regularised logistic regression on scaled/log/one-hot features.

    Classes are weighted (``balanced``) when a calibrator follows, which undoes the shift.
    """
    return Pipeline(
        [
            (
                "features",
                make_preprocessor(ts.numeric_features, ts.categorical_features, linear=True),
            ),
            (
                "model",
                LogisticRegression(
                    C=c,
                    class_weight="balanced" if balanced else None,
                    max_iter=5000,
                    random_state=seed,
                ),
            ),
        ]
    )


def xgboost_pipeline(
    ts: TrainingSet, params: dict[str, Any], *, seed: int, n_jobs: int
) -> Pipeline:
    return Pipeline(
        [
            (
                "features",
                make_preprocessor(ts.numeric_features, ts.categorical_features, linear=False),
            ),
            (
                "model",
                XGBClassifier(**params, random_state=seed, n_jobs=n_jobs, tree_method="hist"),
            ),
        ]
    )
