"""Resampled evaluation: the whole training protocol, tuning included, repeated on many splits.

One hold-out test figure depends on which rows it happened to hold out. Here every candidate
is tuned, fitted and tested again on each round, and the spread of test ROC-AUC is reported:

- ``random`` protocols (a snapshot): repeated stratified splits, one per seed (seeds 0 .. n-1),
  the seed also seeding the tuning, as a training run with that seed would;
- ``out_of_time`` protocols (events): rolling origin, one model per test month (the newest
  ``n`` matured months), each trained only on the months whose labels had matured before it.

Each round also records which candidate its validation folds would have chosen (the training
run's rule, test figures unseen): ``selected`` is the recipe a champion comes from. Pure code:
no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from churn_assets.lib.modeling.data import matured_train_end
from churn_assets.lib.modeling.fitting import fit_calibrated
from churn_assets.lib.modeling.protocol import Protocol, best_by_validation, validation_auc
from churn_assets.lib.modeling.recipes import Budget, recipe
from churn_assets.lib.training_set import TrainingSet

SELECTED = "selected"
"""The pseudo-candidate of each round's validation winner."""


@dataclass(frozen=True)
class Round:
    """One resampling round: its label and the protocol (seed or dates) of its split."""

    label: str
    protocol: Protocol


def repeated_split_rounds(protocol: Protocol, n_seeds: int) -> list[Round]:
    """Stratified splits of a random protocol with seeds 0 .. ``n_seeds`` - 1."""
    if protocol.kind != "random":
        raise ValueError("repeated splits need a random protocol")
    return [Round(f"seed {seed}", replace(protocol, seed=seed)) for seed in range(n_seeds)]


def rolling_origin_rounds(
    protocol: Protocol, matured_dates: Sequence[date], n_origins: int
) -> list[Round]:
    """One round per test month, the newest ``n_origins`` matured dates, each trained up to the
    newest date whose label horizon closed by that month."""
    if protocol.kind != "out_of_time" or protocol.horizon_days is None:
        raise ValueError("rolling origins need an out-of-time protocol with its label horizon")
    origins = sorted(set(matured_dates))[-n_origins:]
    return [
        Round(
            f"{month:%Y-%m}",
            replace(
                protocol,
                train_end=matured_train_end(month, protocol.horizon_days),
                test_start=month,
                test_end=month,
            ),
        )
        for month in origins
    ]


def rounds_for(protocol: Protocol, frame: pl.DataFrame, ts: TrainingSet, n: int) -> list[Round]:
    """The protocol's kind of resampling: repeated splits (random) or rolling origin."""
    if protocol.kind == "random":
        return repeated_split_rounds(protocol, n)
    return rolling_origin_rounds(protocol, frame[ts.time_column].unique().to_list(), n)


@dataclass(frozen=True)
class Resampled:
    """Per-round figures of every candidate (and of the selected one), and their summary."""

    kind: str
    rounds: list[dict[str, Any]]
    summary: list[dict[str, Any]] = field(default_factory=list)


def evaluate_rounds(
    ts: TrainingSet,
    frame: pl.DataFrame,
    rounds: Sequence[Round],
    budgets: Mapping[str, Budget],
    *,
    study_prefix: str,
    log: Callable[[str], None] = lambda _: None,
) -> Resampled:
    """Tune, fit and test every candidate (the keys of ``budgets``, in order) on every round
    with the training run's own recipes, calibration and test metrics."""
    rows: list[dict[str, Any]] = []
    for round_ in rounds:
        protocol = round_.protocol
        split = protocol.split(ts, frame)
        scored: list[dict[str, Any]] = []
        for name, budget in budgets.items():
            study = f"{study_prefix}-{round_.label.replace(' ', '')}-{name}"
            chosen = recipe(name, ts, split, protocol, budget, study)
            model, fold_auc = fit_calibrated(
                chosen.pipeline(),
                ts,
                split,
                calibration=protocol.calibration_method,
                threshold=protocol.threshold,
            )
            metrics = protocol.evaluate(model, split).metrics
            scored.append(
                {
                    "round": round_.label,
                    "candidate": name,
                    "validation_roc_auc": validation_auc(fold_auc),
                    "test_roc_auc": metrics["roc_auc"],
                    "test_ece": metrics["ece"],
                    "train_rows": int(split.y_train.size),
                    "test_rows": int(split.y_test.size),
                }
            )
            log(
                f"{round_.label} {name}: validation ROC-AUC {scored[-1]['validation_roc_auc']:.4f}"
                f", test {metrics['roc_auc']:.4f}, ECE {metrics['ece']:.4f}"
            )
        best = scored[best_by_validation([r["validation_roc_auc"] for r in scored])]
        scored.append({**best, "candidate": SELECTED})
        rows += [{**r, "round_winner": best["candidate"]} for r in scored]
    kind = "repeated splits" if rounds and rounds[0].protocol.kind == "random" else "rolling origin"
    return Resampled(kind, rows, summarize(rows))


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, sample standard deviation and range of test ROC-AUC (and mean ECE) per candidate,
    in first-seen order."""
    order = list(dict.fromkeys(r["candidate"] for r in rows))
    summary = []
    for name in order:
        auc = np.array([r["test_roc_auc"] for r in rows if r["candidate"] == name], dtype=float)
        ece = np.array([r["test_ece"] for r in rows if r["candidate"] == name], dtype=float)
        summary.append(
            {
                "candidate": name,
                "rounds": int(auc.size),
                "mean_test_roc_auc": float(auc.mean()),
                "std_test_roc_auc": float(auc.std(ddof=1)) if auc.size > 1 else 0.0,
                "min_test_roc_auc": float(auc.min()),
                "max_test_roc_auc": float(auc.max()),
                "mean_test_ece": float(ece.mean()),
            }
        )
    return summary


def resampling_plot(result: Resampled, target: float | None = None) -> bytes:
    """Test ROC-AUC of every round per candidate (points), their mean (bar) and the target."""
    import matplotlib.pyplot as plt

    from churn_assets.lib.metadata import figure_png

    names = [s["candidate"] for s in result.summary]
    fig, ax = plt.subplots(figsize=(1.6 * max(len(names), 3), 4))
    for i, summary in enumerate(result.summary):
        auc = [r["test_roc_auc"] for r in result.rounds if r["candidate"] == summary["candidate"]]
        ax.bar(i, summary["mean_test_roc_auc"], color="#cbd5e1", width=0.6)
        ax.scatter(np.full(len(auc), i) + np.linspace(-0.15, 0.15, len(auc)), auc, s=14, zorder=3)
    if target is not None:
        ax.axhline(target, color="#b91c1c", ls="--", lw=1, label=f"target {target:.2f}")
        ax.legend(loc="lower right")
    low = min(r["test_roc_auc"] for r in result.rounds)
    ax.set_ylim(max(0.0, min(low, target or low) - 0.03), 1.0)
    ax.set_xticks(range(len(names)), names)
    ax.set(ylabel="test ROC-AUC", title=f"{result.kind}: test ROC-AUC per round")
    return figure_png(fig)
