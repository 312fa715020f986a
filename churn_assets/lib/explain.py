"""Explanations in the raw feature vocabulary: per-customer top drivers and global plots.

Every number comes from :meth:`ChurnClassifier.contributions` (exact TreeSHAP from the booster
for XGBoost, linear SHAP for the logistic model, the deep model's own attributions), in
log-odds of the uncalibrated estimator; calibration is monotone, so it keeps ranking and sign.
The batch scores, the API and the stream all call the same :func:`top_drivers`, so a customer's
reasons are the same wherever they are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from churn_assets.lib.metadata import figure_png
from churn_assets.lib.modeling import ChurnClassifier, feature_frame

ID_COLUMNS = ("customer_id", "observation_date")


@dataclass(frozen=True)
class Explanation:
    """Raw-feature contributions of a sample of rows, and the rows' raw values."""

    values: np.ndarray
    data: pd.DataFrame
    features: list[str]


def explain(model: ChurnClassifier, x: pd.DataFrame) -> Explanation:
    """Contributions for raw feature rows ``x`` (see ``feature_frame``)."""
    return Explanation(model.contributions(x), x[model.features], model.features)


def global_importance(explanation: Explanation) -> pd.Series:
    """Mean |contribution| per raw feature, descending."""
    return pd.Series(
        np.abs(explanation.values).mean(axis=0), index=explanation.features
    ).sort_values(ascending=False)


def top_drivers(model: ChurnClassifier, frame: pl.DataFrame, k: int = 3) -> pl.DataFrame:
    """Per row: churn probability and the ``k`` raw features pushing it most, with sign.

    ``frame`` holds the model's raw feature columns (as in the TrainingSet); identifier
    columns present in it (``customer_id``, ``observation_date``) are carried through.
    Columns: ``churn_probability``, ``driver_<i>``, ``driver_<i>_value``,
    ``driver_<i>_shap`` for i = 1..k (positive = raises churn risk).
    """
    x = feature_frame(frame, model.numeric_features, model.categorical_features)
    values = model.contributions(x)
    order = np.argsort(-np.abs(values), axis=1, kind="mergesort")[:, :k]
    features = np.asarray(model.features, dtype=object)
    # the value as text, or null where the feature is unknown (a left-censored window)
    raw = x[model.features].astype("string").to_numpy(dtype=object, na_value=None)
    rows = np.arange(len(x))
    columns: dict[str, Any] = {c: frame[c] for c in ID_COLUMNS if c in frame.columns}
    columns["churn_probability"] = model.predict_proba(x)[:, 1]
    for i in range(order.shape[1]):
        columns[f"driver_{i + 1}"] = features[order[:, i]].tolist()
        columns[f"driver_{i + 1}_value"] = raw[rows, order[:, i]].tolist()
        columns[f"driver_{i + 1}_shap"] = values[rows, order[:, i]]
    return pl.DataFrame(columns)


def shap_plots(explanation: Explanation, n_dependence: int = 3) -> dict[str, bytes]:
    """Global bar, beeswarm and dependence plots for the top numeric features."""
    import matplotlib.pyplot as plt
    import shap

    out: dict[str, bytes] = {}
    importance = global_importance(explanation).head(15)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(importance) + 1))
    ax.barh(importance.index, importance.to_numpy())
    ax.set(xlabel="mean |contribution| (log-odds)", title="Global feature importance")
    out["shap_importance.png"] = figure_png(fig)

    numeric = explanation.data.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    encoded = shap.Explanation(
        values=explanation.values, data=numeric, feature_names=explanation.features
    )
    shap.plots.beeswarm(encoded, max_display=15, show=False)
    out["shap_beeswarm.png"] = figure_png(plt.gcf())

    ranked = [
        explanation.features.index(name)
        for name in global_importance(explanation).index
        if not np.isnan(numeric[:, explanation.features.index(name)]).all()
    ]
    for rank, column in enumerate(ranked[:n_dependence], start=1):
        shap.plots.scatter(encoded[:, column], color=encoded, show=False)
        out[f"shap_dependence_{rank}_{_slug(explanation.features[column])}.png"] = figure_png(
            plt.gcf()
        )
    return out


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)[:40]
