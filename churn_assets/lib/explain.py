"""SHAP explanations for the XGBoost churn model, in the raw feature vocabulary.

TreeExplainer works on the one-hot encoded matrix; contributions of the dummy columns of a
categorical feature are summed back to that feature so a driver reads "Contract", not
"Contract_Month-to-month". Contributions are in log-odds of the uncalibrated booster
(calibration is monotone, so it keeps the ranking and the sign).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl

from churn_assets.lib.evaluation import figure_png
from churn_assets.lib.modeling import ChurnClassifier, feature_frame

if TYPE_CHECKING:
    import shap

ID_COLUMNS = ("customer_id", "observation_date")


@dataclass(frozen=True)
class Explanation:
    """SHAP values on the encoded matrix plus their aggregation to raw features."""

    encoded: shap.Explanation
    raw_values: np.ndarray
    raw_features: list[str]


def _encoded_to_raw(model: ChurnClassifier) -> np.ndarray:
    """Index of the raw feature behind every encoded column (numerics first, then dummies)."""
    encoder = model.pipeline.named_steps["features"].named_transformers_["cat"]
    n_numeric = len(model.numeric_features)
    index = list(range(n_numeric))
    for i, categories in enumerate(getattr(encoder, "categories_", [])):
        index += [n_numeric + i] * len(categories)
    return np.asarray(index)


def explain(model: ChurnClassifier, x: pd.DataFrame) -> Explanation:
    """TreeExplainer SHAP values for raw feature rows ``x`` (see ``feature_frame``)."""
    import shap

    pre = model.pipeline.named_steps["features"]
    booster = model.pipeline.named_steps["model"]
    encoded = pre.transform(x[model.features])
    names = list(pre.get_feature_names_out())
    values = shap.TreeExplainer(booster).shap_values(encoded)
    raw_index = _encoded_to_raw(model)
    raw_values = np.zeros((len(x), len(model.features)))
    np.add.at(raw_values.T, raw_index, values.T)
    return Explanation(
        encoded=shap.Explanation(values=values, data=encoded, feature_names=names),
        raw_values=raw_values,
        raw_features=model.features,
    )


def global_importance(explanation: Explanation) -> pd.Series:
    """Mean |SHAP| per raw feature, descending."""
    return pd.Series(
        np.abs(explanation.raw_values).mean(axis=0), index=explanation.raw_features
    ).sort_values(ascending=False)


def top_drivers(model: ChurnClassifier, frame: pl.DataFrame, k: int = 3) -> pl.DataFrame:
    """Per row: churn probability and the ``k`` raw features pushing it most, with sign.

    ``frame`` holds the model's raw feature columns (as in the TrainingSet); identifier
    columns present in it (``customer_id``, ``observation_date``) are carried through.
    Columns: ``churn_probability``, ``driver_<i>``, ``driver_<i>_value``,
    ``driver_<i>_shap`` for i = 1..k (positive shap = raises churn risk).
    """
    x = feature_frame(frame, model.numeric_features, model.categorical_features)
    explanation = explain(model, x)
    order = np.argsort(-np.abs(explanation.raw_values), axis=1, kind="mergesort")[:, :k]
    features = np.asarray(explanation.raw_features, dtype=object)
    raw = x[model.features].astype(str).to_numpy()
    rows = np.arange(len(x))
    columns: dict[str, Any] = {c: frame[c] for c in ID_COLUMNS if c in frame.columns}
    columns["churn_probability"] = model.predict_proba(x)[:, 1]
    for i in range(order.shape[1]):
        columns[f"driver_{i + 1}"] = features[order[:, i]].tolist()
        columns[f"driver_{i + 1}_value"] = raw[rows, order[:, i]].tolist()
        columns[f"driver_{i + 1}_shap"] = explanation.raw_values[rows, order[:, i]]
    return pl.DataFrame(columns)


def shap_plots(explanation: Explanation, n_dependence: int = 3) -> dict[str, bytes]:
    """Global bar (raw features), beeswarm (encoded) and dependence plots for top numerics."""
    import matplotlib.pyplot as plt
    import shap

    out: dict[str, bytes] = {}
    importance = global_importance(explanation).head(15)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(importance) + 1))
    ax.barh(importance.index, importance.to_numpy())
    ax.set(xlabel="mean |SHAP| (log-odds)", title="Global feature importance")
    out["shap_importance.png"] = figure_png(fig)

    shap.plots.beeswarm(explanation.encoded, max_display=15, show=False)
    out["shap_beeswarm.png"] = figure_png(plt.gcf())

    encoded = explanation.encoded
    mean_abs = np.abs(encoded.values).mean(axis=0)
    for rank, column in enumerate(np.argsort(-mean_abs)[:n_dependence], start=1):
        name = encoded.feature_names[column]
        shap.plots.scatter(encoded[:, column], color=encoded, show=False)
        out[f"shap_dependence_{rank}_{_slug(name)}.png"] = figure_png(plt.gcf())
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
