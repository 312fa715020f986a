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

CalibrationMethod = Literal["isotonic", "sigmoid", "seasonal", "none"]
# The events feature group's calendar feature (month 1-12 of the observation date): the seasonal
# prior reads the scoring month from it, so a row carries everything its probability needs.
SEASON_FEATURE = "observation_month"


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
                # A window unknown on every fit row (left-censored: an early validation fold)
                # stays a column, so the encoded layout never depends on the fit rows.
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
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


def calendar_months(dates: np.ndarray) -> np.ndarray:
    """Calendar month (1-12) of each date."""
    months = np.asarray(dates, dtype="datetime64[M]").astype(np.int64)
    return np.asarray(months % 12 + 1)


def season_balancing_weights(
    dates: np.ndarray, y: np.ndarray, rate: float | None = None
) -> np.ndarray:
    """Row weights under which every observation date has the same churn rate ``rate`` (the
    rows' own overall rate by default), and keeps its total weight.

    Trained with them, a model cannot learn the month's base rate from whatever features
    happen to be confounded with the season (on retail the 365-day windows are only known from
    December on, so unweighted trees tied them to the winter's 58% churn and scored the summer
    test months 0.10 too high); :class:`SeasonalPrior` then puts each month's rate back.
    """
    dates = np.asarray(dates, dtype="datetime64[D]")
    y = np.asarray(y)
    overall = float(y.mean()) if rate is None else rate
    weights = np.ones(len(y))
    for day in np.unique(dates):
        rows = dates == day
        rate = float(y[rows].mean())
        if 0.0 < rate < 1.0:
            weights[rows & (y == 1)] = overall / rate
            weights[rows & (y == 0)] = (1.0 - overall) / (1.0 - rate)
    return weights


class SeasonalPrior(BaseEstimator):
    """Shifts a season-balanced model's log-odds to the churn rate of the scoring month's
    calendar month, as last observed: ``logit q = logit p + logit(r_month) - logit(r_all)``.

    The rates are those of the newest training date of each calendar month (the most recent
    matured months of that season; labels of later months are not known when the model is
    trained). A calendar month the training dates never reached keeps the overall rate. This is
    the prior-shift correction of Saerens et al. (2002) with the season's known base rate as the
    new prior; it reads only the row's own ``month_feature``, so every row scores on its own.
    """

    def __init__(self, month_feature: str = SEASON_FEATURE) -> None:
        self.month_feature = month_feature

    def fit(self, dates: np.ndarray, y: np.ndarray) -> SeasonalPrior:
        dates = np.asarray(dates, dtype="datetime64[D]")
        y = np.asarray(y, dtype=float)
        self.base_rate_ = float(y.mean())
        self.month_rates_ = np.full(12, np.nan)
        for day in np.unique(dates):  # ascending: the newest date of each month wins
            self.month_rates_[calendar_months(day[None])[0] - 1] = y[dates == day].mean()
        return self

    def shift(self, months: np.ndarray) -> np.ndarray:
        """Log-odds offset per row; 0 for a month without a known rate (or no month)."""
        months = np.asarray(months, dtype=float)
        known = np.isfinite(months) & (months >= 1) & (months <= 12)
        index = np.where(known, months, 1).astype(np.int64) - 1
        rates = np.where(known, self.month_rates_[index], np.nan)
        rates = np.where(np.isnan(rates), self.base_rate_, rates)
        return _logit(rates) - _logit(np.asarray(self.base_rate_))

    def transform(self, scores: np.ndarray, x: pd.DataFrame) -> np.ndarray:
        return self.apply(scores, x[self.month_feature].to_numpy())

    def apply(self, scores: np.ndarray, months: np.ndarray) -> np.ndarray:
        """Shifted probabilities of ``scores`` given each row's calendar month (the arithmetic
        every scoring path shares, so they agree to the last bit)."""
        shifted = _logit(np.asarray(scores)) + self.shift(months)
        return np.asarray(1.0 / (1.0 + np.exp(-shifted)))


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
        prior: SeasonalPrior | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.calibrator = calibrator
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.threshold = threshold
        self.background = background
        self.prior = prior

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Models logged before the seasonal prior existed load without one.
        super().__setstate__({"prior": None, **state})

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]

    def raw_scores(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(x[self.features])[:, 1]

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        """Raw scores, shifted to the scoring month's season (if the model has a prior), then
        calibrated (if it has a calibrator)."""
        scores = self.raw_scores(x)
        if self.prior is not None:
            scores = self.prior.transform(scores, x)
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
