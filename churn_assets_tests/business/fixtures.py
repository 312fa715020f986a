"""Seeded synthetic months: scores with top-3 drivers, values and labels, in the shapes the
business layer reads (``<ds>_monitoring.scores``, value frames, ``fct_labels``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import polars as pl

FAMILIES = {
    "recency_days": "recency",
    "orders_90d": "frequency",
    "revenue_180d": "spend",
    "returns_90d": "returns",
    "observation_month": "season",
    "tenure_days": "frequency",
}
DESCRIPTIONS = {
    "recency_days": "Days from the last purchase day to T.",
    "orders_90d": "Distinct purchase orders in [T - 90d, T).",
    "revenue_180d": "Purchase revenue in GBP (quantity x price) in [T - 180d, T).",
    "returns_90d": "Return and cancellation lines in [T - 90d, T).",
    "observation_month": "Calendar month of T (1-12): the churn base rate is seasonal.",
    "tenure_days": "Days from the first purchase day to T.",
}


def synthetic_month(
    n: int, seed: int, observation_date: date = date(2011, 6, 1), mature: bool = True
) -> dict[str, pl.DataFrame]:
    """``n`` customers: probabilities, risk deciles, drivers (sorted by |shap|), values with
    a long right tail, labels drawn from the probabilities, trailing revenue."""
    rng = np.random.default_rng(seed)
    ids = [f"{10000 + i}" for i in range(n)]
    p = rng.beta(2, 3, n)
    order = np.argsort(p, kind="mergesort")
    decile = np.empty(n, dtype=int)
    decile[order] = np.arange(n) * 10 // n + 1
    features = np.array(list(FAMILIES))
    columns: dict[str, object] = {
        "observation_date": [observation_date] * n,
        "customer_id": ids,
        "churn_probability": p,
        "risk_decile": decile,
    }
    shaps = rng.normal(0, 0.2, (n, 3))
    shaps = np.take_along_axis(shaps, np.argsort(-np.abs(shaps), axis=1), axis=1)
    for i in range(3):
        chosen = rng.choice(features, n)
        columns[f"driver_{i + 1}"] = chosen.tolist()
        columns[f"driver_{i + 1}_value"] = [f"{v:.1f}" for v in rng.gamma(2, 50, n)]
        columns[f"driver_{i + 1}_shap"] = shaps[:, i]
    scores = pl.DataFrame(columns)
    value = rng.lognormal(6, 1.2, n)
    values = pl.DataFrame({"customer_id": ids, "value": value})
    churned = (rng.random(n) < p).astype(int)
    labels = pl.DataFrame(
        {
            "customer_id": ids,
            "churned": churned if mature else [None] * n,
            "is_mature": [mature] * n,
        },
        schema_overrides={"churned": pl.Int8},
    )
    trailing = pl.DataFrame({"customer_id": ids, "trailing_revenue": value / 4})
    return {"scores": scores, "values": values, "labels": labels, "trailing": trailing}


# A small valid playbook (dataset "shop"): two actions with overlapping families.
PLAYBOOK_DATA: dict[str, Any] = {
    "dataset": "shop",
    "version": "3",
    "owner": "team:crm",
    "currency": "GBP",
    "margin_rate": 0.5,
    "campaign": {"budget": 100.0, "control_share": 0.2},
    "actions": [
        {
            "name": "voucher",
            "description": "A voucher.",
            "families": ["recency", "frequency"],
            "channel": "email",
            "cost_per_contact": 1.0,
            "offer_cost": 10.0,
            "acceptance": {"low": 0.1, "mid": 0.2, "high": 0.3},
            "uplift": {"low": 0.05, "mid": 0.10, "high": 0.20},
        },
        {
            "name": "call",
            "description": "A phone call.",
            "families": ["recency", "returns"],
            "cost_per_contact": 5.0,
            "offer_cost": 0.0,
            "acceptance": {"low": 0.0, "mid": 0.0, "high": 0.0},
            "uplift": {"low": 0.10, "mid": 0.15, "high": 0.30},
        },
    ],
}
