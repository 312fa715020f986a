"""The dbt vars of a declared dataset: one set of feature models, parametrised per dataset.

dbt runs once per dataset with these vars (its name, kind, windows, horizon, observation dates,
snapshot columns and feature expressions), built from its declaration, and its tables land in
``<dataset>_staging``, ``<dataset>_intermediate`` and ``<dataset>_features``. Pure: the Dagster
side (manifests, the dbt resource) is ``churn_assets.defs.features.project``.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from churn_assets.lib.contracts import snapshot_columns
from churn_assets.lib.contracts.types import dbt_column_types
from churn_assets.lib.datasets import PROJECT_ROOT, DatasetSpec
from churn_assets.lib.features_registry import feature_set

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
# The dbt models that compute event features, in build order, and the labels built on them:
# one list shared by the training-set provenance and the benchmark.
EVENT_FEATURE_CHAIN = (
    "stg_events",
    "int_observation_dates",
    "int_daily_tiles",
    "int_purchase_history",
    "int_product_days",
    "int_customer_asof",
    "fct_features",
)
EVENT_LABEL_CHAIN = ("fct_labels", "fct_training_spine")
SNAPSHOT_CHAIN = ("stg_snapshot", "fct_snapshot_features")


def model_chain(spec: DatasetSpec) -> tuple[str, ...]:
    return EVENT_FEATURE_CHAIN + EVENT_LABEL_CHAIN if spec.kind == "events" else SNAPSHOT_CHAIN


def dbt_vars(
    spec: DatasetSpec,
    duckdb_path: str | None = None,
    observation: tuple[date, date] | None = None,
) -> dict[str, Any]:
    """The dbt vars of one dataset: everything its models read comes from its declaration."""
    features = feature_set(spec)
    out: dict[str, Any] = {
        "dataset": spec.name,
        "kind": spec.kind,
        "not_null_features": list(features.always_known),
        "column_types": dbt_column_types(),
    }
    if duckdb_path:
        out["duckdb_path"] = duckdb_path
    if spec.kind == "events":
        ev = spec.ev
        out |= {
            "windows": ev.windows,
            "long_windows": ev.long_windows,
            "label_horizon_days": ev.label_horizon_days,
            "active_window_days": ev.active_window_days,
            "exclusion_reasons": [e.reason for e in ev.exclude],
        }
        if observation:
            out |= {
                "observation_start": observation[0].isoformat(),
                "observation_end": observation[1].isoformat(),
            }
    else:
        snap = spec.snap
        out |= {
            "snapshot_date": snap.snapshot_date.isoformat(),
            "snapshot_columns": snapshot_columns(spec),
            "snapshot_features": [{"name": f.name, "sql": f.sql or f.name} for f in snap.features],
        }
    return out


def vars_arg(variables: dict[str, Any]) -> list[str]:
    return ["--vars", json.dumps(variables, sort_keys=True)]
