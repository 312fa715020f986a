"""Distribution drift maths: PSI on reference deciles, KS two-sample test, categorical PSI.

Pure numpy/scipy so it is unit-tested against hand computations. Binning is always derived
from the *reference* sample alone (its deciles), never from pooled reference+current data and
never with Sturges/"auto" rules: pooled bins move whenever the current sample moves, so the same
current month would get a different PSI against a different reference, and Sturges bins on
large samples get so fine that empty bins dominate the sum.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any, Literal

import numpy as np
from scipy import stats

EPSILON = 1e-4
"""Floor for empty-bin proportions: keeps ln(a/e) finite while still penalising an empty bin."""

DEFAULT_PSI_WARN = 0.1
DEFAULT_PSI_ALERT = 0.2
DEFAULT_VOLUME_WARN = 0.15
DEFAULT_VOLUME_ALERT = 0.3
"""Relative change of the scored population vs the reference's mean rows per observation date.

Per-customer distributions can stay put while the population itself swells: the Nov–Dec
retail peak adds ~40 % active customers but moves most per-customer features by PSI < 0.1."""
MISSING = "<missing>"

Status = Literal["ok", "warn", "alert"]


def decile_edges(reference: np.ndarray) -> np.ndarray:
    """Inner bin edges = reference deciles with duplicates removed.

    Heavily tied features (e.g. mostly zeros) collapse several deciles onto one value; keeping
    duplicates would create empty zero-width bins that only ever contribute epsilon noise.
    """
    values = reference[~np.isnan(reference)]
    if values.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))


def bin_proportions(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` per bin (-inf, e1], (e1, e2], ..., (ek, +inf) plus a missing bin.

    The outer bins are open so a current value outside the reference range still lands in a
    bin instead of being silently dropped (that drop is exactly what hides a level shift).
    """
    missing = np.isnan(values)
    present = values[~missing]
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
    counts = np.append(counts, missing.sum())
    total = max(values.size, 1)
    return counts / total


def psi_from_proportions(expected: np.ndarray, actual: np.ndarray, eps: float = EPSILON) -> float:
    """Population stability index sum((a - e) * ln(a / e)) with empty bins floored at ``eps``."""
    e = np.clip(expected, eps, None)
    a = np.clip(actual, eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, eps: float = EPSILON) -> float:
    edges = decile_edges(reference)
    return psi_from_proportions(
        bin_proportions(reference, edges), bin_proportions(current, edges), eps
    )


def categorical_proportions(
    reference: Sequence[Any], current: Sequence[Any]
) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Aligned category shares; categories unseen in the reference get their own bins.

    Returns (categories, reference shares, current shares, unseen categories). Unseen categories
    are counted (reference share 0, floored by epsilon in the PSI) rather than dropped, because a
    brand-new category is drift, not noise.
    """
    ref = [MISSING if v is None else str(v) for v in reference]
    cur = [MISSING if v is None else str(v) for v in current]
    ref_levels = sorted(set(ref))
    unseen = sorted(set(cur) - set(ref_levels))
    levels = ref_levels + unseen
    index = {level: i for i, level in enumerate(levels)}
    ref_counts = np.bincount([index[v] for v in ref], minlength=len(levels)).astype(float)
    cur_counts = np.bincount([index[v] for v in cur], minlength=len(levels)).astype(float)
    return (
        levels,
        ref_counts / max(len(ref), 1),
        cur_counts / max(len(cur), 1),
        unseen,
    )


def classify(psi: float, warn: float, alert: float) -> Status:
    if psi >= alert:
        return "alert"
    if psi >= warn:
        return "warn"
    return "ok"


@dataclass(frozen=True)
class FeatureDrift:
    """One row of the drift table: a feature (or the model score) and its test results."""

    feature: str
    kind: Literal["numeric", "categorical", "score"]
    psi: float
    status: Status
    bin_labels: list[str]
    reference_shares: list[float]
    current_shares: list[float]
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    unseen_categories: list[str] = field(default_factory=list)
    reference_n: int = 0
    current_n: int = 0
    alerting: bool = True
    """False for features that drift by construction: measured and shown, never alerted on."""

    @property
    def drifted(self) -> bool:
        return self.alerting and self.status == "alert"


def _edge_labels(edges: np.ndarray) -> list[str]:
    if edges.size == 0:
        return ["(-inf, +inf)", MISSING]
    bounds = [f"{e:.4g}" for e in edges]
    labels = [f"(-inf, {bounds[0]}]"]
    labels += [f"({lo}, {hi}]" for lo, hi in pairwise(bounds)]
    labels.append(f"({bounds[-1]}, +inf)")
    return [*labels, MISSING]


def numeric_drift(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    warn: float = DEFAULT_PSI_WARN,
    alert: float = DEFAULT_PSI_ALERT,
    kind: Literal["numeric", "score"] = "numeric",
) -> FeatureDrift:
    """PSI on reference deciles plus the KS two-sample test (scipy's, on non-missing values)."""
    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = decile_edges(reference)
    ref_p = bin_proportions(reference, edges)
    cur_p = bin_proportions(current, edges)
    psi = psi_from_proportions(ref_p, cur_p)
    ref_ok, cur_ok = reference[~np.isnan(reference)], current[~np.isnan(current)]
    ks_stat: float | None = None
    ks_p: float | None = None
    if ref_ok.size and cur_ok.size:
        result = stats.ks_2samp(ref_ok, cur_ok)
        ks_stat, ks_p = float(result.statistic), float(result.pvalue)
    return FeatureDrift(
        feature=name,
        kind=kind,
        psi=psi,
        status=classify(psi, warn, alert),
        bin_labels=_edge_labels(edges),
        reference_shares=ref_p.tolist(),
        current_shares=cur_p.tolist(),
        ks_statistic=ks_stat,
        ks_pvalue=ks_p,
        reference_n=int(reference.size),
        current_n=int(current.size),
    )


def categorical_drift(
    name: str,
    reference: Sequence[Any],
    current: Sequence[Any],
    warn: float = DEFAULT_PSI_WARN,
    alert: float = DEFAULT_PSI_ALERT,
) -> FeatureDrift:
    levels, ref_p, cur_p, unseen = categorical_proportions(reference, current)
    psi = psi_from_proportions(ref_p, cur_p)
    return FeatureDrift(
        feature=name,
        kind="categorical",
        psi=psi,
        status=classify(psi, warn, alert),
        bin_labels=levels,
        reference_shares=ref_p.tolist(),
        current_shares=cur_p.tolist(),
        unseen_categories=unseen,
        reference_n=len(reference),
        current_n=len(current),
    )


@dataclass(frozen=True)
class DriftSummary:
    """Everything the report, the UI metadata, the MLflow artifact and the alert need."""

    partition: str
    model_name: str
    model_version: str
    training_set: str
    features: list[FeatureDrift]
    score: FeatureDrift | None
    psi_warn: float
    psi_alert: float
    share_alert: float
    current_rows: int = 0
    reference_rows_per_month: float = 0.0
    volume_warn: float = DEFAULT_VOLUME_WARN
    volume_alert: float = DEFAULT_VOLUME_ALERT

    @property
    def volume_change(self) -> float:
        """current / reference-per-month - 1 (0 when the reference size is unknown)."""
        if self.reference_rows_per_month <= 0:
            return 0.0
        return self.current_rows / self.reference_rows_per_month - 1

    @property
    def volume_status(self) -> Status:
        return classify(abs(self.volume_change), self.volume_warn, self.volume_alert)

    @property
    def alerting_features(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.alerting]

    @property
    def share_drifted(self) -> float:
        """Share of the alerting features that drifted past the alert level."""
        alerting = self.alerting_features
        if not alerting:
            return 0.0
        return sum(f.drifted for f in alerting) / len(alerting)

    @property
    def status(self) -> Status:
        """Alert when the score, enough features or the population size moved past alert level."""
        if (
            (self.score is not None and self.score.status == "alert")
            or (self.alerting_features and self.share_drifted >= self.share_alert)
            or self.volume_status == "alert"
        ):
            return "alert"
        if (
            any(f.status != "ok" for f in self.alerting_features)
            or (self.score is not None and self.score.status != "ok")
            or self.volume_status != "ok"
        ):
            return "warn"
        return "ok"

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "training_set": self.training_set,
            "thresholds": {
                "psi_warn": self.psi_warn,
                "psi_alert": self.psi_alert,
                "share_drifted_alert": self.share_alert,
                "volume_warn": self.volume_warn,
                "volume_alert": self.volume_alert,
            },
            "volume": {
                "current_rows": self.current_rows,
                "reference_rows_per_month": self.reference_rows_per_month,
                "change": self.volume_change,
                "status": self.volume_status,
            },
            "status": self.status,
            "share_drifted": self.share_drifted,
            "drifted_features": self.drifted_features,
            "score": asdict(self.score) if self.score else None,
            "features": [asdict(f) for f in self.features],
        }


def summarize(
    *,
    partition: str,
    model_name: str,
    model_version: str,
    training_set: str,
    reference: Mapping[str, Sequence[Any]],
    current: Mapping[str, Sequence[Any]],
    numeric_features: Sequence[str],
    categorical_features: Sequence[str],
    reference_scores: np.ndarray | None,
    current_scores: np.ndarray | None,
    psi_warn: float = DEFAULT_PSI_WARN,
    psi_alert: float = DEFAULT_PSI_ALERT,
    share_alert: float = 0.3,
    reference_rows_per_month: float = 0.0,
    volume_warn: float = DEFAULT_VOLUME_WARN,
    volume_alert: float = DEFAULT_VOLUME_ALERT,
    measured_only: Collection[str] = (),
    known_only: Collection[str] = (),
) -> DriftSummary:
    """Run every test for every feature; columns are plain sequences (no dataframe coupling).

    Features in ``measured_only`` are tested and reported like the others but cannot raise the
    status: cumulative features (tenure, lifetime totals) drift every month by construction, and
    an alert that always fires teaches people to ignore alerts. Features in ``known_only`` are
    compared on their known values: they are NULL where their window reaches back before the
    data (left-censored), and a reference full of early months would otherwise "drift" from
    every later month by its share of NULLs alone.
    """

    def values(column: Sequence[Any], name: str) -> np.ndarray:
        array = np.asarray(column, dtype=float)
        return array[~np.isnan(array)] if name in known_only else array

    rows = [
        numeric_drift(
            name,
            values(reference[name], name),
            values(current[name], name),
            psi_warn,
            psi_alert,
        )
        for name in numeric_features
    ]
    rows += [
        categorical_drift(name, reference[name], current[name], psi_warn, psi_alert)
        for name in categorical_features
    ]
    rows = [replace(row, alerting=False) if row.feature in measured_only else row for row in rows]
    score = None
    if reference_scores is not None and current_scores is not None:
        score = numeric_drift(
            "churn_probability", reference_scores, current_scores, psi_warn, psi_alert, "score"
        )
    return DriftSummary(
        partition=partition,
        model_name=model_name,
        model_version=model_version,
        training_set=training_set,
        features=rows,
        score=score,
        psi_warn=psi_warn,
        psi_alert=psi_alert,
        share_alert=share_alert,
        current_rows=len(next(iter(current.values()))) if current else 0,
        reference_rows_per_month=reference_rows_per_month,
        volume_warn=volume_warn,
        volume_alert=volume_alert,
    )
