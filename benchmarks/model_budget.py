"""Benchmark: what the Optuna budget buys, on the real training sets that ``make run`` wrote.

For each dataset it fits the logistic baseline once, then tunes XGBoost with growing budgets
on one persisted study (topped up from budget to budget, as the asset does on re-runs), all
with the assets' own protocols: Telco stratified 80/20, Retail out of time. It prints the test
ROC-AUC with its bootstrap CI, the gap to the dataset's declared target, the gain over the baseline and
the wall time as a ratio of the baseline's fit time, measured in the same run.

Examples::

    .venv/bin/python -m benchmarks.model_budget                       # budgets 5,20,50
    .venv/bin/python -m benchmarks.model_budget --datasets retail --budgets 20,100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churn_assets.lib import modeling
from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.modeling.protocol import Protocol
from churn_assets.lib.training_set import PROVENANCE_FILE, TrainingSet
from churn_assets.settings import settings_from_env


def latest_snapshot(spec: DatasetSpec) -> TrainingSet:
    """The most recently written snapshot of a dataset under the processed folder."""
    root = Path(settings_from_env().processed_dir) / spec.name
    snapshots = sorted(root.glob(f"*/{PROVENANCE_FILE}"), key=lambda p: p.stat().st_mtime)
    if not snapshots:
        raise SystemExit(f"no {spec.name} training set under {root}: run `make run` first")
    excluded = json.loads(snapshots[-1].read_text()).get("excluded_features", {})
    features = feature_set(spec)
    return TrainingSet(
        dataset=spec.name,
        version=snapshots[-1].parent.name,
        path=snapshots[-1].parent,
        numeric_features=tuple(n for n in features.numeric if n not in excluded),
        categorical_features=tuple(n for n in features.categorical if n not in excluded),
        excluded_features=excluded,
    )


def sweep(
    spec: DatasetSpec, ts: TrainingSet, budgets: list[int], seed: int, study_dir: Path
) -> None:
    protocol = Protocol(
        kind=spec.protocol,
        seed=seed,
        horizon_days=spec.ev.label_horizon_days if spec.kind == "events" else None,
        cost_false_positive=spec.decision.cost_false_positive,
        cost_false_negative=spec.decision.cost_false_negative,
    )
    calibration, threshold = protocol.calibration_method, protocol.threshold
    split = protocol.split(ts, ts.frame())

    def test_auc(model: modeling.ChurnClassifier) -> tuple[float, float, float]:
        m = protocol.evaluate(model, split).metrics
        return m["roc_auc"], m["roc_auc_ci_low"], m["roc_auc_ci_high"]

    started = time.perf_counter()
    baseline, _ = modeling.fit_calibrated(
        modeling.baseline_pipeline(ts, seed=seed, balanced=protocol.class_weights),
        ts,
        split,
        calibration=calibration,
        threshold=threshold,
    )
    baseline_seconds = time.perf_counter() - started
    base_auc, low, high = test_auc(baseline)
    target = spec.targets.roc_auc
    print(f"\n{ts.dataset} {ts.version}: {split.x_train.shape[0]} train / {split.y_test.size} test")
    print(
        f"{'model':<22}{'test AUC':>9}  {'95% CI':<15}{'vs target':>10}{'vs base':>9}"
        f"{'seconds':>9}{'× base':>8}"
    )
    print(
        f"{'logistic baseline':<22}{base_auc:>9.4f}  [{low:.3f}, {high:.3f}]  "
        f"{base_auc - target:>+9.4f}{0:>+9.4f}{baseline_seconds:>9.1f}{1:>7.0f}x"
    )
    storage = f"sqlite:///{study_dir / f'{ts.dataset}.db'}"
    for budget in budgets:
        tuning = modeling.tune_xgboost(
            ts,
            split,
            n_trials=budget,
            timeout_seconds=None,
            seed=seed,
            n_jobs=1,
            storage=storage,
            study_name=f"budget-{ts.dataset}",
            weight_classes=protocol.class_weights,
            balance_seasons=protocol.balance_seasons,
        )
        model, _ = modeling.fit_calibrated(
            modeling.xgboost_pipeline(ts, tuning.params, seed=seed, n_jobs=1),
            ts,
            split,
            calibration=calibration,
            threshold=threshold,
        )
        auc, low, high = test_auc(model)
        elapsed = time.perf_counter() - started
        print(
            f"{f'xgboost {budget} trials':<22}{auc:>9.4f}  [{low:.3f}, {high:.3f}]  "
            f"{auc - target:>+9.4f}{auc - base_auc:>+9.4f}{elapsed:>9.1f}"
            f"{elapsed / baseline_seconds:>7.0f}x"
            f"   (cv {tuning.cv_auc:.4f})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="telco,retail")
    parser.add_argument("--budgets", default="5,20,50", help="cumulative Optuna trial counts")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    specs = load_declarations()
    with tempfile.TemporaryDirectory(prefix="model-budget-") as study_dir:
        for dataset in args.datasets.split(","):
            spec = specs[dataset]
            sweep(spec, latest_snapshot(spec), budgets, args.seed, Path(study_dir))


if __name__ == "__main__":
    main()
