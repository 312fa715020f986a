"""The scoring core without a server: fast path equality, fallbacks, deciles, raw values."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from churn_assets.lib import modeling
from churn_assets.lib.explain import explain
from churn_assets.lib.modeling import MISSING_CATEGORY, ChurnClassifier, feature_frame
from churn_assets.lib.modeling.estimators import SEASON_FEATURE
from churn_assets.serving import scoring
from churn_assets.serving.scoring import FeatureRows, Scorer
from churn_assets_tests.serving.conftest import ServingEnv
from churn_assets_tests.serving.fixtures import XGB_PARAMS
from churn_assets_tests.training.fixtures import synthetic_retail_training_set

pytestmark = pytest.mark.xdist_group("serving")


def _rows(env: ServingEnv, frame: pl.DataFrame) -> FeatureRows:
    ts = env.training_set
    return FeatureRows.from_frame(frame, ts.numeric_features, ts.categorical_features)


def _edge_frame(env: ServingEnv) -> pl.DataFrame:
    """Nulls everywhere, an unseen category and extreme numbers next to ordinary rows."""
    ordinary = env.training_set.frame().head(3)
    edges = pl.DataFrame(
        {
            "recency_days": [None, 1e300, -5.0],
            "orders_90d": [None, 0.0, 1e6],
            "revenue_90d": [None, -0.0, 3.5],
            "segment_country": [None, "Atlantis", "UK"],
        }
    )
    return pl.concat([ordinary.select(edges.columns), edges])


def test_fast_path_equals_predict_proba_and_treeexplainer(serving_env: ServingEnv) -> None:
    scorer = Scorer(serving_env.model, serving_env.training_set.frame())
    assert scorer.fast_path and scorer.explainer == "xgboost_pred_contribs"
    frame = _edge_frame(serving_env)
    numeric = list(serving_env.training_set.numeric_features)
    x = feature_frame(frame, tuple(numeric), ("segment_country",))
    scores = scorer.score(_rows(serving_env, frame), reasons=True)
    assert np.array_equal(scores.probability, serving_env.model.predict_proba(x)[:, 1])
    assert scores.contributions is not None
    # SHAP refuses values beyond float32; the booster sends them past every split, as it
    # does the largest float32, so that is what the reference explains.
    limit = float(np.finfo(np.float32).max)
    clipped = x.assign(**{c: x[c].clip(-limit, limit) for c in numeric})
    reference = explain(serving_env.model, clipped).values
    np.testing.assert_allclose(scores.contributions, reference, atol=1e-6)


def test_batch_explanations_by_split_pattern_equal_the_booster(serving_env: ServingEnv) -> None:
    """Large batches use per-tree pattern tables; rows with unseen patterns (shifted copies,
    nulls, values beyond float32) are explained by the booster within the same batch."""
    ts = serving_env.training_set
    scorer = Scorer(serving_env.model, ts.frame())
    booster = scorer._booster
    assert booster is not None and booster.patterns is not None
    frame = ts.frame().sample(400, seed=7)
    shifted = frame.with_columns(
        pl.col("recency_days") * 1.37 + 0.5,
        pl.when(pl.col("orders_90d") > 3)
        .then(None)
        .otherwise(pl.col("orders_90d"))
        .alias("orders_90d"),
    )
    columns = list(ts.features)
    batch = pl.concat(
        [frame.select(columns), shifted.select(columns), _edge_frame(serving_env)],
        how="vertical_relaxed",
    )
    encoded = booster.encode(_rows(serving_env, batch))
    assert booster.patterns.contributions(scoring._finite32(encoded)) is not None  # engaged
    np.testing.assert_allclose(
        booster.contributions(encoded),
        booster.contributions(encoded, by_pattern=False),
        rtol=0,
        atol=scoring.CONTRIBUTION_TOLERANCE,  # float32 sums of ~6 log-odds differ by ~1e-6
    )


def test_deciles_rank_against_the_training_scores(serving_env: ServingEnv) -> None:
    frame = serving_env.training_set.frame()
    scorer = Scorer(serving_env.model, frame)
    training = scorer.probabilities(_rows(serving_env, frame))
    deciles = scorer.deciles(training)
    counts = np.bincount(deciles, minlength=11)[1:]
    assert counts.sum() == len(frame) and set(np.unique(deciles)) <= set(range(1, 11))
    assert deciles[np.argmin(training)] == 1 and deciles[np.argmax(training)] == 10
    # Each decile holds the scores between two edges, ties going to the lower decile.
    edges = scorer.decile_edges
    assert all(scorer.deciles(np.array([e]))[0] == i + 1 for i, e in enumerate(edges))


def test_a_fast_path_that_disagrees_is_not_used(
    serving_env: ServingEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = scoring._BoosterPath.encode

    def shifted(self: Any, rows: FeatureRows) -> np.ndarray:
        return original(self, rows) + 1e-3

    monkeypatch.setattr(scoring._BoosterPath, "encode", shifted)
    scorer = Scorer(serving_env.model, serving_env.training_set.frame())
    # the model's own pipeline and its own contributions take over
    assert not scorer.fast_path and scorer.explainer == "model_contributions"
    frame = serving_env.training_set.frame().head(50)
    x = feature_frame(frame, serving_env.training_set.numeric_features, ("segment_country",))
    assert np.array_equal(
        scorer.probabilities(_rows(serving_env, frame)), serving_env.model.predict_proba(x)[:, 1]
    )
    scored = scorer.score(_rows(serving_env, frame), reasons=True)
    assert scored.contributions is not None
    assert np.allclose(scored.contributions, serving_env.model.contributions(x), atol=1e-9)


class _SelfExplaining(ChurnClassifier):
    """A model that explains itself (the lead's ``contributions`` interface)."""

    def contributions(self, x: pd.DataFrame) -> np.ndarray:
        return np.tile(np.arange(len(self.features), dtype=float), (len(x), 1)) - 1.5


def test_other_models_use_their_own_methods(serving_env: ServingEnv) -> None:
    ts = serving_env.training_set
    split = modeling.split_random(ts, ts.frame(), seed=42, n_folds=2)
    fitted = modeling.baseline_pipeline(ts, seed=42).fit(split.x_train, split.y_train)
    logistic = _SelfExplaining(fitted, None, ts.numeric_features, ts.categorical_features)
    scorer = Scorer(logistic, ts.frame())
    assert not scorer.fast_path and scorer.explainer == "model_contributions"
    frame = _edge_frame(serving_env)
    scores = scorer.score(_rows(serving_env, frame), reasons=True)
    x = feature_frame(frame, ts.numeric_features, ts.categorical_features)
    assert np.array_equal(scores.probability, logistic.predict_proba(x)[:, 1])
    assert scores.top_reasons()[0].tolist() == [0, 3, 1]  # |-1.5| = |1.5| > |±0.5|: ties in order


def test_feature_rows_read_frames_like_feature_frame(serving_env: ServingEnv) -> None:
    ts = serving_env.training_set
    frame = _edge_frame(serving_env).with_columns(pl.col("orders_90d").cast(pl.Int32))
    rows = _rows(serving_env, frame)
    x = feature_frame(frame, ts.numeric_features, ts.categorical_features)
    assert np.array_equal(rows.numeric, x[list(ts.numeric_features)].to_numpy(), equal_nan=True)
    assert rows.categorical[:, 0].tolist() == x["segment_country"].tolist()
    assert rows.value(3, 0) is None and rows.value(3, 3) is None
    assert rows.value(4, 3) == "Atlantis" and rows.value(4, 0) == 1e300
    texts = rows.texts(np.array([0, 3, 3, 0, 3, 1]))
    assert texts[3] is None and texts[4] == "Atlantis" and texts[2] == frame["segment_country"][2]
    assert MISSING_CATEGORY not in [t for t in texts if t]
    with pytest.raises(scoring.FeatureTypeError, match="'recency_days'"):
        FeatureRows.from_frame(
            frame.with_columns(pl.lit("soon").alias("recency_days")),
            ts.numeric_features,
            ts.categorical_features,
        )


def test_a_seasonal_model_keeps_the_fast_path_and_its_season_shift(tmp_path: Path) -> None:
    """Out-of-time models carry a seasonal prior read from the row's calendar month: the fast
    path applies it too (else it would disagree and fall back to the slow pipeline)."""
    ts = synthetic_retail_training_set(tmp_path)
    split = modeling.split_out_of_time(
        ts,
        ts.frame(),
        train_end=date(2011, 3, 1),
        test_start=date(2011, 6, 1),
        test_end=date(2011, 9, 1),
        horizon_days=90,
        n_val_folds=2,
    )
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(ts, XGB_PARAMS, seed=42, n_jobs=1),
        ts,
        split,
        calibration="seasonal",
        threshold=0.5,
    )
    assert model.prior is not None
    scorer = Scorer(model, ts.frame())
    assert scorer.fast_path
    frame = ts.frame()
    rows = FeatureRows.from_frame(frame, ts.numeric_features, ts.categorical_features)
    x = feature_frame(frame, ts.numeric_features, ts.categorical_features)
    assert np.array_equal(scorer.probabilities(rows), model.predict_proba(x)[:, 1])
    # the shift moves probabilities: the same row scored in another month scores differently
    july = frame.with_columns(pl.lit(7).alias(SEASON_FEATURE))
    january = frame.with_columns(pl.lit(1).alias(SEASON_FEATURE))
    as_july, as_january = (
        scorer.probabilities(
            FeatureRows.from_frame(f, ts.numeric_features, ts.categorical_features)
        )
        for f in (july, january)
    )
    assert not np.allclose(as_july, as_january)
