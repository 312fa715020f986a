"""Model fitting for churn: inputs and protocols, the deployable model, fitting and tuning.

Pure code (no Dagster, no MLflow) so every step is unit-testable and reproducible. Saved models
reference their classes through this package (``churn_assets.lib.modeling.ChurnClassifier``):
the names re-exported here keep every model ever logged loadable.
"""

from churn_assets.lib.modeling.data import (
    MISSING_CATEGORY,
    DataSplit,
    Folds,
    anchored_out_of_time_dates,
    check_time_gap,
    feature_frame,
    out_of_time_blocker,
    split_out_of_time,
    split_random,
)
from churn_assets.lib.modeling.estimators import (
    CalibrationMethod,
    Calibrator,
    ChurnClassifier,
    SkewedLog1p,
    baseline_pipeline,
    make_preprocessor,
    raw_feature_index,
    xgboost_pipeline,
)
from churn_assets.lib.modeling.fitting import (
    TuningResult,
    fit_calibrated,
    out_of_fold_scores,
    tune_xgboost,
)

__all__ = [
    "MISSING_CATEGORY",
    "CalibrationMethod",
    "Calibrator",
    "ChurnClassifier",
    "DataSplit",
    "Folds",
    "SkewedLog1p",
    "TuningResult",
    "anchored_out_of_time_dates",
    "baseline_pipeline",
    "check_time_gap",
    "feature_frame",
    "fit_calibrated",
    "make_preprocessor",
    "out_of_fold_scores",
    "out_of_time_blocker",
    "raw_feature_index",
    "split_out_of_time",
    "split_random",
    "tune_xgboost",
    "xgboost_pipeline",
]
