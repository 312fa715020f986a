"""PSI / KS maths against hand computations and scipy, plus the report renderer."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pytest
from scipy import stats

from churn_assets.defs.monitoring.sensors import newly_mature
from churn_assets.lib import drift
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.drift_report import plots, render_html
from churn_assets.lib.features_registry import feature_set


def test_psi_is_zero_for_identical_samples() -> None:
    sample = np.random.default_rng(0).normal(size=5_000)
    assert drift.numeric_psi(sample, sample.copy()) == pytest.approx(0.0, abs=1e-12)
    levels = ["a", "b", "b", "c"]
    assert drift.categorical_drift("x", levels, list(levels)).psi == pytest.approx(0.0, abs=1e-12)


def test_psi_on_known_shift_matches_hand_computation() -> None:
    # Reference 0..99: deciles at 9.9, 19.8, ..., 89.1 → ten bins of exactly 10 % each.
    reference = np.arange(100, dtype=float)
    # Current: half the mass moves past the reference maximum (the open outer bin keeps it).
    current = np.concatenate([np.arange(50, dtype=float), np.full(50, 500.0)])
    # Current shares: bins 1-5 hold 10 values each (10 %), bin 10 holds the 50 shifted values.
    expected = [0.1] * 10
    actual = [0.1] * 5 + [0.0] * 4 + [0.5]
    hand = sum(
        (max(a, drift.EPSILON) - e) * math.log(max(a, drift.EPSILON) / e)
        for a, e in zip(actual, expected, strict=True)
    )
    assert drift.numeric_psi(reference, current) == pytest.approx(hand, rel=1e-12)
    assert hand == pytest.approx(4 * (1e-4 - 0.1) * math.log(1e-4 / 0.1) + 0.4 * math.log(5))


def test_duplicate_edges_are_removed_for_tied_reference() -> None:
    reference = np.array([0.0] * 80 + list(range(1, 21)), dtype=float)
    edges = drift.decile_edges(reference)
    assert len(edges) == len(set(edges.tolist()))
    assert edges[0] == 0.0
    shares = drift.bin_proportions(reference, edges)
    assert shares.sum() == pytest.approx(1.0)
    assert shares[0] == pytest.approx(0.8)  # every zero in one bin, not smeared over 8 empty ones


def test_values_outside_reference_range_land_in_open_outer_bins() -> None:
    reference = np.linspace(0, 1, 1_000)
    edges = drift.decile_edges(reference)
    shares = drift.bin_proportions(np.array([-5.0, 7.0, np.nan]), edges)
    assert shares[0] == pytest.approx(1 / 3)
    assert shares[len(edges)] == pytest.approx(1 / 3)
    assert shares[-1] == pytest.approx(1 / 3)  # missing bin


def test_ks_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.normal(0, 1, 3_000), rng.normal(0.2, 1.1, 2_000)
    row = drift.numeric_drift("x", reference, current)
    expected = stats.ks_2samp(reference, current)
    assert row.ks_statistic == expected.statistic
    assert row.ks_pvalue == expected.pvalue


def test_categorical_psi_counts_unseen_categories() -> None:
    reference = ["UK"] * 90 + ["DE"] * 10
    current = ["UK"] * 60 + ["DE"] * 10 + ["US"] * 30
    row = drift.categorical_drift("country", reference, current)
    assert row.unseen_categories == ["US"]
    hand = (0.6 - 0.9) * math.log(0.6 / 0.9) + (0.3 - drift.EPSILON) * math.log(0.3 / drift.EPSILON)
    assert row.psi == pytest.approx(hand)
    assert row.status == "alert"


def _inputs(
    reference: dict[str, Any], numeric: list[str], categorical: list[str], **extra: Any
) -> dict[str, Any]:
    """Keyword arguments of :func:`drift.summarize` for one month, without scores by default."""
    return {
        "partition": "2011-12-01",
        "model_name": "churn-retail",
        "model_version": "1",
        "training_set": "v1",
        "reference": reference,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "reference_scores": None,
        "current_scores": None,
        **extra,
    }


def test_summary_thresholds_share_and_report() -> None:
    rng = np.random.default_rng(2)
    reference = {"a": rng.normal(size=2_000), "b": rng.normal(size=2_000), "c": ["x", "y"] * 1_000}
    current = {"a": rng.normal(3, 1, 1_000), "b": rng.normal(size=1_000), "c": ["x", "y"] * 500}
    summary = drift.summarize(
        **_inputs(
            reference,
            ["a", "b"],
            ["c"],
            current=current,
            reference_scores=rng.uniform(size=2_000),
            current_scores=rng.uniform(size=1_000),
            psi_warn=0.1,
            psi_alert=0.2,
            share_alert=0.3,
        )
    )
    assert summary.drifted_features == ["a"]
    assert summary.share_drifted == pytest.approx(1 / 3)
    assert summary.status == "alert"
    assert summary.to_dict()["thresholds"]["psi_alert"] == 0.2
    html = render_html(summary, "retail", plots(summary))
    assert html.count("data:image/png;base64,") == 4  # score + three features
    assert "ALERT" in html
    relaxed = drift.summarize(
        **_inputs(reference, ["a", "b"], ["c"], current=current, share_alert=0.5)
    )
    assert relaxed.status == "warn"


def test_measured_only_features_are_reported_but_never_raise_the_status() -> None:
    rng = np.random.default_rng(4)
    reference = {"tenure": rng.normal(size=2_000), "b": rng.normal(size=2_000), "c": ["x"] * 2_000}
    current = {"tenure": rng.normal(3, 1, 1_000), "b": rng.normal(size=1_000), "c": ["x"] * 1_000}
    kwargs = _inputs(reference, ["tenure", "b"], ["c"], current=current, share_alert=0.3)
    alerting = drift.summarize(**kwargs)
    assert (alerting.status, alerting.drifted_features) == ("alert", ["tenure"])

    measured = drift.summarize(**kwargs, measured_only={"tenure"})
    (tenure,) = [f for f in measured.features if f.feature == "tenure"]
    assert tenure.status == "alert" and tenure.psi > 0.2  # still measured, same statistic
    assert not tenure.alerting and not tenure.drifted
    assert (measured.status, measured.drifted_features, measured.share_drifted) == ("ok", [], 0.0)
    assert measured.to_dict()["features"][0]["alerting"] is False
    assert "grows with history, not alerted" in render_html(measured, "retail", {})


def test_history_features_are_the_cumulative_ones(specs: dict[str, DatasetSpec]) -> None:
    retail = feature_set(specs["retail"])
    history = retail.grows_with_history
    assert {"tenure_days", "lifetime_orders", "lifetime_revenue", "n_lapses_90d"} <= history
    windowed = {f.name for f in retail.features if f.window}
    assert windowed and not history & windowed  # bounded windows compare month to month: alert
    assert not feature_set(specs["telco"]).grows_with_history


def test_population_volume_change_drives_status() -> None:
    rng = np.random.default_rng(3)
    kwargs = _inputs({"a": rng.normal(size=1_000)}, ["a"], [], reference_rows_per_month=100.0)
    peak = drift.summarize(**kwargs, current={"a": rng.normal(size=140).tolist()})
    assert peak.volume_change == pytest.approx(0.4)
    assert (peak.volume_status, peak.status) == ("alert", "alert")
    usual = drift.summarize(**kwargs, current={"a": rng.normal(size=105).tolist()})
    assert usual.volume_status == "ok"


def test_every_month_matured_by_a_data_drop_is_measured() -> None:
    """A 90-day horizon drifts against calendar months: the May 2011 drop matures both
    February and March, the February drop matures only November (measured again)."""
    keys = [date(2010 + (2 + i) // 12, (2 + i) % 12 + 1, 1).isoformat() for i in range(22)]
    assert newly_mature(keys, date(2011, 5, 31), 90) == ["2011-02-01", "2011-03-01"]
    assert newly_mature(keys, date(2011, 2, 28), 90) == ["2010-11-01"]
    assert newly_mature(keys, date(2011, 12, 9), 90) == ["2011-08-01", "2011-09-01"]
    # Only observation dates that exist (partitions) are measured.
    assert newly_mature([k for k in keys if k != "2011-03-01"], date(2011, 5, 31), 90) == [
        "2011-02-01"
    ]
    assert newly_mature(keys, date(2010, 5, 15), 90) == []  # 2010-03-01 matures on 05-30
