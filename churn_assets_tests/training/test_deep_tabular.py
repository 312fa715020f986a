"""Deep tabular model: reproducibility, early stopping, numpy inference, explanations, saving.

Everything runs on a few hundred synthetic rows whose churn depends on one numeric and one
categorical feature, so each fit takes well under a second after JAX has compiled.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from churn_assets.lib import modeling
from churn_assets.lib.deep import (
    DeepTabularClassifier,
    contributions,
    deep_pipeline,
    make_deep_preprocessor,
    training,
    tune_deep,
)
from churn_assets.lib.training_set import TrainingSet

NUMERIC = ("tenure", "spend", "noise")
CATEGORICAL = ("contract", "region")
FAST = {
    "hidden_width": 16,
    "embedding_dim": 3,
    "batch_size": 64,
    "learning_rate": 1e-2,
    "max_epochs": 30,
}
REPO = Path(__file__).resolve().parents[2]


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn rises with short tenure and month-to-month contracts; spend is skewed, noise is not."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 72, n)
    contract = rng.choice(["monthly", "yearly", "two_year"], n, p=[0.5, 0.3, 0.2])
    logit = 1.5 - tenure / 18 + np.where(contract == "monthly", 1.5, -1.0)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x = pd.DataFrame(
        {
            "tenure": tenure,
            "spend": rng.lognormal(3, 1, n),
            "noise": rng.normal(size=n),
            "contract": contract.astype(object),
            "region": rng.choice(["north", "south"], n).astype(object),
        }
    )
    return x, y


def weights_digest(model: DeepTabularClassifier) -> str:
    arrays = [model.embedding_, *model.weights_, *model.biases_, model.output_weight_]
    return hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic(400, seed=0)


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, np.ndarray]) -> Pipeline:
    x, y = data
    return deep_pipeline(NUMERIC, CATEGORICAL, FAST, seed=3).fit(x, y)


def test_same_seed_gives_bit_identical_weights_in_any_process(
    data: tuple[pd.DataFrame, np.ndarray], fitted: Pipeline
) -> None:
    """Same seed: identical bits, also in a fresh interpreter with another XLA thread setup."""
    x, y = data
    again = deep_pipeline(NUMERIC, CATEGORICAL, FAST, seed=3).fit(x, y)
    other_seed = deep_pipeline(NUMERIC, CATEGORICAL, FAST, seed=4).fit(x, y)
    digest = weights_digest(fitted.named_steps["model"])
    assert weights_digest(again.named_steps["model"]) == digest
    assert weights_digest(other_seed.named_steps["model"]) != digest

    script = textwrap.dedent(
        """
        from churn_assets.lib.deep import deep_pipeline
        from churn_assets_tests.training.test_deep_tabular import (
            CATEGORICAL, FAST, NUMERIC, synthetic, weights_digest,
        )
        x, y = synthetic(400, seed=0)
        pipe = deep_pipeline(NUMERIC, CATEGORICAL, FAST, seed=3).fit(x, y)
        print(weights_digest(pipe.named_steps["model"]))
        """
    )
    single_thread = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env = {
        **os.environ,
        "XLA_FLAGS": "" if os.environ.get("XLA_FLAGS") else single_thread,
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == digest


def test_early_stopping_stops_and_keeps_the_best_epoch() -> None:
    """On labels that are pure noise the validation loss bottoms out early; training stops
    ``patience`` epochs later and the kept weights are those of the best epoch."""
    x, _ = synthetic(600, seed=1)
    y = np.random.default_rng(1).integers(0, 2, len(x))
    values = make_deep_preprocessor(NUMERIC, ()).fit_transform(x[list(NUMERIC)])
    fit, val = slice(0, 450), slice(450, None)
    model = DeepTabularClassifier(
        hidden_width=64, n_layers=2, learning_rate=3e-3, max_epochs=200, patience=5
    ).fit(values[fit], y[fit], eval_set=(values[val], y[val]))
    assert model.n_epochs_ < 200
    assert model.n_epochs_ == model.best_epoch_ + 5
    assert len(model.validation_loss_) == model.n_epochs_
    best = min(model.validation_loss_)
    assert model.validation_loss_[model.best_epoch_ - 1] == best
    p = model.predict_proba(values[val])[:, 1]
    kept = -np.mean(y[val] * np.log(p) + (1 - y[val]) * np.log(1 - p))
    assert kept == pytest.approx(best, abs=1e-5)


def test_numpy_inference_equals_the_jax_forward_pass(
    data: tuple[pd.DataFrame, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exported network (folded batch norm, float64 numpy) scores like the trained one."""
    x, y = data
    captured: dict[str, Any] = {}
    real_train = training.train

    def spy(x_numeric: np.ndarray, rows: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        result = real_train(x_numeric, rows, *args, **kwargs)
        captured.update(x_numeric=x_numeric, rows=rows, net=result, config=kwargs["config"])
        return result

    monkeypatch.setattr(training, "train", spy)
    pipe = deep_pipeline(NUMERIC, CATEGORICAL, {**FAST, "validation_fraction": 0.0}, seed=0)
    pipe.fit(x, y)
    net = captured["net"]
    assert isinstance(net, training.TrainedNetwork)
    reference, _ = training.forward(
        net.params,
        net.state,
        captured["x_numeric"],
        captured["rows"],
        captured["config"],
        train=False,
    )
    jax_logits = np.asarray(reference)
    numpy_logits = pipe.named_steps["model"].decision_function(pipe[:-1].transform(x))
    np.testing.assert_allclose(numpy_logits, jax_logits, atol=1e-4)
    np.testing.assert_allclose(
        pipe.predict_proba(x)[:, 1], 1 / (1 + np.exp(-jax_logits)), atol=2e-5
    )


def test_contributions_are_complete_zero_at_the_baseline_and_find_the_drivers(
    data: tuple[pd.DataFrame, np.ndarray], fitted: Pipeline
) -> None:
    x, _ = data
    model: DeepTabularClassifier = fitted.named_steps["model"]
    values = contributions(fitted, x)
    assert values.shape == (len(x), len(NUMERIC) + len(CATEGORICAL))
    logit = model.decision_function(fitted[:-1].transform(x))
    np.testing.assert_allclose(values.sum(axis=1), logit - model.baseline_logit_, atol=1e-8)
    # A feature sitting at its baseline value (here: the modal contract) contributes nothing.
    modal = x["contract"] == x["contract"].mode()[0]
    assert np.all(values[modal.to_numpy(), len(NUMERIC)] == 0.0)
    # Tenure and contract carry the signal; noise and region do not.
    importance = dict(zip([*NUMERIC, *CATEGORICAL], np.abs(values).mean(axis=0), strict=True))
    assert min(importance["tenure"], importance["contract"]) > 3 * max(
        importance["noise"], importance["region"]
    )
    # Short tenure raises churn risk: its contribution falls as tenure grows.
    assert np.corrcoef(x["tenure"], values[:, 0])[0, 1] < -0.9


def test_unknown_categories_and_missing_values_score_without_error(
    data: tuple[pd.DataFrame, np.ndarray], fitted: Pipeline
) -> None:
    x, _ = data
    odd = x.head(3).copy()
    odd.loc[0, "contract"] = "weekly"  # never seen in training
    odd.loc[1, "region"] = modeling.MISSING_CATEGORY
    odd.loc[2, "spend"] = np.nan
    p = fitted.predict_proba(odd)[:, 1]
    assert np.all((p > 0) & (p < 1))
    assert np.all(np.isfinite(contributions(fitted, odd)))
    # An unknown contract is scored with the frequency-weighted mean contract embedding.
    model: DeepTabularClassifier = fitted.named_steps["model"]
    start, n_known = model.embedding_offsets_[0], model.cardinalities_[0]
    unknown, known = model.embedding_[start], model.embedding_[start + 1 : start + 1 + n_known]
    assert not np.allclose(unknown, 0.0)
    assert np.all(unknown >= known.min(axis=0)) and np.all(unknown <= known.max(axis=0))


def test_calibrated_churn_classifier_round_trips_through_skops_and_scores_without_jax(
    data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    """Inside ChurnClassifier with an isotonic calibrator, as the training asset logs it; the
    saved model holds only trusted types and a fresh process scores it without JAX."""
    x, y = data
    x_test, y_test = synthetic(200, seed=9)
    ts = TrainingSet("synthetic", "v1", tmp_path, NUMERIC, CATEGORICAL)
    folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(x, y))
    split = modeling.DataSplit("random", x, y, x_test, y_test, folds, np.arange(len(y_test)))
    model, fold_auc = modeling.fit_calibrated(
        deep_pipeline(NUMERIC, CATEGORICAL, {**FAST, "validation_fraction": 0.0}, seed=0),
        ts,
        split,
        calibration="isotonic",
        threshold=0.2,
    )
    p = model.predict_proba(x_test)[:, 1]
    assert model.calibrator is not None
    assert len(fold_auc) == 3
    assert roc_auc_score(y_test, p) > 0.75

    blob = skops.io.dumps(model)
    untrusted = skops.io.get_untrusted_types(data=blob)
    assert all(t.startswith(("churn_assets.lib.", "numpy.", "sklearn.")) for t in untrusted)
    (tmp_path / "model.skops").write_bytes(blob)
    x_test.to_pickle(tmp_path / "x.pkl")
    np.save(tmp_path / "expected.npy", p)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np, pandas as pd, skops.io
        blob = open({str(tmp_path / "model.skops")!r}, "rb").read()
        model = skops.io.loads(blob, trusted=skops.io.get_untrusted_types(data=blob))
        p = model.predict_proba(pd.read_pickle({str(tmp_path / "x.pkl")!r}))[:, 1]
        assert np.array_equal(p, np.load({str(tmp_path / "expected.npy")!r})), "scores differ"
        assert "jax" not in sys.modules, "scoring imported JAX"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_tuning_returns_refit_params_and_tops_up_a_persisted_study(
    data: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    x, y = data
    folds = list(StratifiedKFold(n_splits=2, shuffle=True, random_state=0).split(x, y))
    split = modeling.DataSplit("random", x, y, x.head(0), y[:0], folds, np.arange(0))
    kwargs: dict = {
        "numeric": NUMERIC,
        "categorical": CATEGORICAL,
        "timeout_seconds": None,
        "seed": 0,
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "study_name": "deep-test",
        "weight_classes": True,
        "max_epochs": 30,
        "patience": 5,
    }
    mappings_before = len(Path("/proc/self/maps").read_text().splitlines())
    result = tune_deep(split, n_trials=2, **kwargs)
    # Each trial's compiled network is released (one kept architecture costs ~350 mappings).
    assert len(Path("/proc/self/maps").read_text().splitlines()) < mappings_before + 200
    assert result.n_trials == 2
    assert 0.5 < result.cv_auc <= 1.0
    assert result.params["validation_fraction"] == 0.0
    assert result.params["max_epochs"] >= 1
    assert 1.0 <= result.params["pos_weight"] <= (y == 0).sum() / (y == 1).sum()
    again = tune_deep(split, n_trials=2, **kwargs)
    assert again.n_trials == 2 and again.params == result.params
    refit = deep_pipeline(NUMERIC, CATEGORICAL, result.params, seed=0).fit(x, y)
    assert refit.named_steps["model"].n_epochs_ == result.params["max_epochs"]
