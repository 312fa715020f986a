"""Measure the training stage on the full data (a tool, not a test).

``python -m churn_assets_tests.training.measure --trials 12`` prints baseline and tuned
XGBoost test metrics per dataset with the assets' protocols; ``--dagster`` runs the training
assets of both datasets through Dagster with the default run config and prints wall time.
Data: the real Telco CSV, and retail features prototyped from the raw events until the
feature store's ``retail_training_set`` is available.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from churn_assets.defs.training.assets import (
    PROTOCOLS,
    ProtocolConfig,
    build_training_assets,
    make_split,
    protocol_params,
    resolve_calibration,
)
from churn_assets.lib import modeling
from churn_assets.lib.evaluation import cost_threshold, evaluate
from churn_assets.lib.training_set import TrainingSet
from churn_assets.resources import build_resources
from churn_assets.settings import get_settings
from churn_assets_tests.training.fixtures import retail_prototype_training_set, telco_training_set

BUILDERS = {"telco": telco_training_set, "retail": retail_prototype_training_set}


def measure(ts: TrainingSet, trials: int, seed: int) -> None:
    """Baseline and tuned XGBoost with the asset protocol, in-memory Optuna study."""
    started = time.perf_counter()
    protocol = PROTOCOLS[ts.dataset]
    params = protocol_params(ProtocolConfig(seed=seed))
    calibration = resolve_calibration(protocol, params["calibration"])
    split = make_split(protocol, ts, ts.frame(), params)
    threshold = cost_threshold(params["cost_false_positive"], params["cost_false_negative"])

    def report(name: str, model: modeling.ChurnClassifier, extra: str) -> None:
        m = evaluate(
            split.y_test,
            model.predict_proba(split.x_test)[:, 1],
            cost_false_positive=params["cost_false_positive"],
            cost_false_negative=params["cost_false_negative"],
            n_bootstrap=params["n_bootstrap"],
            seed=seed,
        ).metrics
        print(
            f"{ts.dataset:7s} {name:9s} test AUC {m['roc_auc']:.4f} "
            f"[{m['roc_auc_ci_low']:.3f}, {m['roc_auc_ci_high']:.3f}] PR-AUC {m['pr_auc']:.3f} "
            f"ECE {m['ece']:.3f} lift@10 {m['top_decile_lift']:.2f} {extra} "
            f"t={time.perf_counter() - started:.0f}s",
            flush=True,
        )

    baseline, fold_auc = modeling.fit_calibrated(
        modeling.baseline_pipeline(ts, seed=seed, balanced=calibration != "none"),
        ts,
        split,
        calibration=calibration,
        threshold=threshold,
    )
    report("logistic", baseline, f"cv {sum(fold_auc) / len(fold_auc):.4f}")
    tuning = modeling.tune_xgboost(
        ts,
        split,
        n_trials=trials,
        timeout_seconds=None,
        seed=seed,
        n_jobs=1,
        storage=None,
        study_name=f"measure-{ts.dataset}",
        weight_classes=calibration != "none",
    )
    model, _ = modeling.fit_calibrated(
        modeling.xgboost_pipeline(ts, tuning.params, seed=seed, n_jobs=1),
        ts,
        split,
        calibration=calibration,
        threshold=threshold,
    )
    report("xgboost", model, f"cv {tuning.cv_auc:.4f} trials {tuning.n_trials}")


def _source(dataset: str, ts: TrainingSet) -> dg.AssetsDefinition:
    @dg.asset(name=f"{dataset}_training_set", group_name="features")
    def training_set() -> TrainingSet:
        return ts

    return training_set


def run_graph(root: Path, datasets: list[str]) -> None:
    """The training assets through Dagster, default run config, state under ``root``."""
    os.environ["CHURN_HOME"] = str(root)
    get_settings.cache_clear()
    sets = {name: BUILDERS[name](root) for name in datasets}
    assets = [_source(name, ts) for name, ts in sets.items()]
    assets += [a for name in sets for a in build_training_assets(name)]
    started = time.perf_counter()
    result = dg.materialize(assets, resources=build_resources())
    print(f"graph success={result.success} in {time.perf_counter() - started:.0f}s")
    keep = ("roc_auc", "baseline_roc_auc", "seconds", "decision", "model_version", "optuna")
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        values: dict[str, Any] = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        print(mat.asset_key.to_user_string(), {k: values[k] for k in keep if k in values})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--datasets", default="telco,retail")
    parser.add_argument("--dagster", action="store_true", help="default run through Dagster")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    datasets = args.datasets.split(",")
    if args.dagster:
        run_graph(root, datasets)
        return
    for dataset in datasets:
        measure(BUILDERS[dataset](root), args.trials, args.seed)


if __name__ == "__main__":
    main()
