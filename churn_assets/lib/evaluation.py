"""Hold-out evaluation of churn probabilities: the metrics and plots every model reports.

Ranking (ROC-AUC with a bootstrap CI, PR-AUC), probability quality (log-loss, Brier, ECE,
calibration curve), targeting value (top-decile lift and capture) and a decision view
(confusion matrix at the cost-optimal threshold). Pure numpy/sklearn/matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from churn_assets.lib.metadata import figure_png


def cost_threshold(cost_false_positive: float, cost_false_negative: float) -> float:
    """Bayes-optimal cut-off for calibrated probabilities: act when p·C_fn > (1-p)·C_fp.

    Needs no data, so the test set is never used to pick the operating point.
    """
    return cost_false_positive / (cost_false_positive + cost_false_negative)


def _fast_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney ROC-AUC with tie handling; ~20x faster than sklearn for bootstraps."""
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=float)
    sorted_p = p[order]
    _, first, counts = np.unique(sorted_p, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg_rank, counts)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auc_ci(
    y: np.ndarray, p: np.ndarray, *, n_bootstrap: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of ROC-AUC (resampling customers with replacement)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_bootstrap):
        idx = rng.integers(0, len(y), len(y))
        if 0 < y[idx].sum() < len(idx):
            values.append(_fast_auc(y[idx], p[idx]))
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width reliability bins: mean predicted vs observed rate and bin counts."""
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(p, edges[1:-1]), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        predicted = np.bincount(bins, weights=p, minlength=n_bins) / counts
        observed = np.bincount(bins, weights=y, minlength=n_bins) / counts
    return {"predicted": predicted, "observed": observed, "count": counts}


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Count-weighted mean |observed - predicted| over the reliability bins."""
    table = calibration_table(y, p, n_bins)
    mask = table["count"] > 0
    gaps = np.abs(table["observed"][mask] - table["predicted"][mask])
    return float(np.sum(gaps * table["count"][mask]) / len(p))


def top_decile(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Lift and share of all churners captured when targeting the 10 % highest scores."""
    n_top = max(int(np.ceil(0.1 * len(p))), 1)
    top = np.argsort(-p, kind="mergesort")[:n_top]
    rate_top = y[top].mean()
    base = y.mean()
    return float(rate_top / base), float(y[top].sum() / max(y.sum(), 1))


@dataclass(frozen=True)
class Evaluation:
    """Scalar metrics (loggable as-is) plus the arrays the plots are drawn from."""

    metrics: dict[str, float]
    y: np.ndarray
    p: np.ndarray


def evaluate(
    y: np.ndarray,
    p: np.ndarray,
    *,
    cost_false_positive: float,
    cost_false_negative: float,
    n_bootstrap: int,
    seed: int,
) -> Evaluation:
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    if np.isnan(p).any():
        raise ValueError("predictions contain NaN")
    threshold = cost_threshold(cost_false_positive, cost_false_negative)
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    low, high = bootstrap_auc_ci(y, p, n_bootstrap=n_bootstrap, seed=seed)
    lift, capture = top_decile(y, p)
    metrics = {
        "roc_auc": float(roc_auc_score(y, p)),
        "roc_auc_ci_low": low,
        "roc_auc_ci_high": high,
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": lift,
        "top_decile_capture": capture,
        "threshold": threshold,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "expected_cost_per_customer": (fp * cost_false_positive + fn * cost_false_negative)
        / len(y),
        "positive_rate": float(y.mean()),
        "n": len(y),
    }
    return Evaluation(metrics=metrics, y=y, p=p)


# --------------------------------------------------------------------------------------------
# Plots and markdown for Dagster metadata / MLflow artifacts
# --------------------------------------------------------------------------------------------


def evaluation_plots(curves: dict[str, Evaluation]) -> dict[str, bytes]:
    """ROC, PR, calibration and cumulative-gain/lift PNGs, one curve per model (same data)."""
    out: dict[str, bytes] = {}

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ev in curves.items():
        fpr, tpr, _ = roc_curve(ev.y, ev.p)
        ax.plot(fpr, tpr, label=f"{name} (AUC {ev.metrics['roc_auc']:.3f})")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC (test)")
    ax.legend(loc="lower right")
    out["roc.png"] = figure_png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ev in curves.items():
        precision, recall, _ = precision_recall_curve(ev.y, ev.p)
        ax.plot(recall, precision, label=f"{name} (AP {ev.metrics['pr_auc']:.3f})")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall (test)")
    ax.legend(loc="upper right")
    out["pr.png"] = figure_png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ev in curves.items():
        table = calibration_table(ev.y, ev.p)
        mask = table["count"] > 0
        ax.plot(
            table["predicted"][mask],
            table["observed"][mask],
            "o-",
            label=f"{name} (ECE {ev.metrics['ece']:.3f})",
        )
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlabel="Mean predicted probability", ylabel="Observed churn rate", title="Calibration")
    ax.legend(loc="upper left")
    out["calibration.png"] = figure_png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, ev in curves.items():
        order = np.argsort(-ev.p, kind="mergesort")
        share = np.arange(1, len(order) + 1) / len(order)
        lift = np.cumsum(ev.y[order]) / np.arange(1, len(order) + 1) / ev.y.mean()
        ax.plot(share, lift, label=f"{name} (top-10% lift {ev.metrics['top_decile_lift']:.2f})")
    ax.axhline(1.0, color="k", ls="--", lw=0.8)
    ax.set(xlabel="Share of customers targeted", ylabel="Cumulative lift", title="Lift")
    ax.legend(loc="upper right")
    out["lift.png"] = figure_png(fig)
    return out


HEADLINE_METRICS = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "cv_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "ece",
    "top_decile_lift",
    "top_decile_capture",
    "threshold",
    "tp",
    "fp",
    "fn",
    "tn",
    "expected_cost_per_customer",
)


def metrics_markdown(columns: dict[str, dict[str, float]]) -> str:
    """Markdown table, one column per model, rows in :data:`HEADLINE_METRICS` order."""
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for metric in HEADLINE_METRICS:
        if not any(metric in columns[n] for n in names):
            continue
        cells = []
        for n in names:
            value = columns[n].get(metric)
            cells.append("" if value is None else f"{value:.4g}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
