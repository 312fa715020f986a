"""The feature registry: every feature of a dataset is declared once, here, from its declaration.

An events dataset gets the event feature group (windows over daily tiles, lifetime and rhythm
features) shaped by its own knobs: its windows, long windows, label horizon, active window and
currency. A snapshot dataset's features are the ones its declaration lists. Everything else is
derived from these declarations, so they cannot drift apart:

* the dbt vars of the feature models (``feature_columns`` for their not-null tests),
* the feature catalogue shown as metadata on the feature assets in the Dagster UI,
* the feature assets' ``code_version`` (a hash of the declarations), so editing a definition or a
  knob marks the assets stale,
* the numeric/categorical split of the training sets, feature versions in provenance, the drift
  monitor's rules (calendar features and features that grow with history) and the reason
  families the business layer groups SHAP drivers into.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

from churn_assets.lib.datasets import DatasetSpec, Family

Dtype = Literal["integer", "double", "varchar"]
EVENT_FEATURE_MODEL = "fct_features"
SNAPSHOT_FEATURE_MODEL = "fct_snapshot_features"


@dataclass(frozen=True)
class Feature:
    """One feature column. ``window`` is in days, None for non-windowed features."""

    name: str
    window: int | None
    aggregation: str
    dtype: Dtype
    family: Family
    description: str
    version: int = 1
    grows_with_history: bool = False
    left_censored: bool = False
    """NULL while its window reaches back before the first day of the data: unknown, not 0."""

    @property
    def categorical(self) -> bool:
        return self.dtype == "varchar"


@dataclass(frozen=True)
class FeatureSet:
    """The features of one dataset, in column order, and what is derived from them."""

    dataset: str
    model: str
    features: tuple[Feature, ...]
    owner: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if not f.categorical)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.categorical)

    @property
    def calendar(self) -> frozenset[str]:
        """Features fixed by the observation date itself (one value per month): comparing a month
        with a multi-month reference would always flag them, so drift monitoring leaves them out."""
        return frozenset(f.name for f in self.features if f.aggregation == "calendar")

    @property
    def grows_with_history(self) -> frozenset[str]:
        """Features that grow with the observed history (drift is measured, never alerted on)."""
        return frozenset(f.name for f in self.features if f.grows_with_history)

    @property
    def left_censored(self) -> frozenset[str]:
        """Features NULL where their window starts before the data (drift compares known values)."""
        return frozenset(f.name for f in self.features if f.left_censored)

    @property
    def always_known(self) -> tuple[str, ...]:
        """Features never NULL (dbt's not-null test covers exactly these)."""
        return tuple(f.name for f in self.features if not f.left_censored)

    @property
    def families(self) -> Mapping[str, Family]:
        return {f.name: f.family for f in self.features}

    @property
    def versions(self) -> dict[str, int]:
        return {f.name: f.version for f in self.features}

    def get(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)

    @property
    def registry_hash(self) -> str:
        """Hash of every declaration: changes whenever any feature definition changes."""
        payload = json.dumps([asdict(f) for f in self.features], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def catalogue_markdown(self) -> str:
        """The feature catalogue as a markdown table (shown in the Dagster UI)."""
        rows = [
            "| feature | window | aggregation | dtype | family | version | drift alerts | description |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows += [
            f"| `{f.name}` | {f'{f.window}d' if f.window else '-'} | {f.aggregation} | {f.dtype} "
            f"| {f.family} | {f.version} "
            f"| {'no (grows with history)' if f.grows_with_history else 'yes'} | {f.description}"
            f"{' NULL while the window reaches back before the data.' if f.left_censored else ''} |"
            for f in self.features
        ]
        return "\n".join(rows)


def feature_set(spec: DatasetSpec) -> FeatureSet:
    """The declared features of a dataset."""
    if spec.kind == "events":
        return FeatureSet(spec.name, EVENT_FEATURE_MODEL, _event_features(spec), spec.owner)
    return FeatureSet(spec.name, SNAPSHOT_FEATURE_MODEL, _snapshot_features(spec), spec.owner)


# Aggregates over the whole purchase history before T. They grow as history accumulates (and are
# cut off at the first event in the data), so month after month they drift from any reference
# by construction: drift reports measure them but never alert on them.
_GROWS_WITH_HISTORY = frozenset(
    {
        "tenure_days",
        "lifetime_orders",
        "lifetime_revenue",
        "interpurchase_mean_days",
        "interpurchase_std_days",
        "max_gap_days",
    }
)

Measure = tuple[str, str, Dtype, Family, str]


def _windowed(windows: list[int], measures: list[Measure]) -> list[Feature]:
    """One feature per (window, measure), named ``<measure>_<w>d``."""
    return [
        Feature(f"{name}_{w}d", w, aggregation, dtype, family, f"{text} in [T - {w}d, T).")
        for w in windows
        for name, aggregation, dtype, family, text in measures
    ]


def _event_features(spec: DatasetSpec) -> tuple[Feature, ...]:
    ev = spec.ev
    money = ev.currency
    w0, w1 = ev.windows[0], ev.windows[1]
    widest = max(ev.windows + ev.long_windows)
    windowed: list[Measure] = [
        ("orders", "count_distinct", "integer", "frequency", "Distinct purchase orders"),
        ("lines", "count", "integer", "frequency", "Purchase lines"),
        ("revenue", "sum", "double", "spend", f"Purchase revenue in {money}"),
        ("returns", "count", "integer", "returns", "Return and cancellation lines"),
        (
            "return_value",
            "sum",
            "double",
            "returns",
            f"Value of returns and cancellations in {money} (positive)",
        ),
        ("distinct_products", "count_distinct", "integer", "frequency", "Distinct products bought"),
    ]
    features = _windowed(ev.windows, windowed)
    plain: list[Measure] = [
        (
            "recency_days",
            "days_since_last",
            "integer",
            "recency",
            "Days from the last purchase day to T.",
        ),
        (
            "tenure_days",
            "days_since_first",
            "integer",
            "recency",
            "Days from the first purchase day to T.",
        ),
        ("lifetime_orders", "count_distinct", "integer", "frequency", "Purchase orders before T."),
        ("lifetime_revenue", "sum", "double", "spend", f"Purchase revenue in {money} before T."),
        (
            f"orders_trend_{w0}d",
            "ratio",
            "double",
            "frequency",
            f"(orders in [T-{w0}d, T) + 1) / (orders in [T-{w1}d, T-{w0}d) + 1).",
        ),
        (
            f"revenue_trend_{w0}d",
            "ratio",
            "double",
            "spend",
            f"(revenue in [T-{w0}d, T) + 1) / (revenue in [T-{w1}d, T-{w0}d) + 1).",
        ),
        (
            "interpurchase_mean_days",
            "mean",
            "double",
            "recency",
            "Mean gap in days between consecutive purchase days before T; the tenure when there "
            "is a single purchase day.",
        ),
        (
            "interpurchase_std_days",
            "stddev_pop",
            "double",
            "recency",
            "Population std of the gaps between consecutive purchase days before T; 0 with fewer "
            "than two gaps.",
        ),
    ]
    features += [Feature(n, None, a, d, fam, t) for n, a, d, fam, t in plain]
    features += _windowed(ev.long_windows, [windowed[0], windowed[2]])
    history: list[tuple[str, int | None, str, Dtype, Family, str]] = [
        (
            f"active_months_{widest}d",
            widest,
            "count_distinct",
            "integer",
            "frequency",
            f"Distinct calendar months with a purchase in [T - {widest}d, T).",
        )
    ]
    if 365 in ev.long_windows:
        history.append(
            (
                "orders_prior_year_horizon",
                365,
                "count_distinct",
                "integer",
                "season",
                f"Distinct purchase orders in [T - 365d, T - {365 - ev.label_horizon_days}d): "
                f"the {ev.label_horizon_days}-day label horizon one year earlier (seasonal buyers).",
            )
        )
    history += [
        (
            "observation_month",
            None,
            "calendar",
            "integer",
            "season",
            "Calendar month of T (1-12): the churn base rate is seasonal.",
        ),
        (
            "max_gap_days",
            None,
            "max",
            "integer",
            "recency",
            "Longest gap in days between consecutive purchase days before T; 0 with a single "
            "purchase day.",
        ),
        (
            f"n_lapses_{ev.active_window_days}d",
            None,
            "count",
            "integer",
            "recency",
            f"Gaps longer than {ev.active_window_days} days (the active window) between "
            "consecutive purchase days before T (past lapses).",
        ),
        (
            "recency_to_mean_gap",
            None,
            "ratio",
            "double",
            "recency",
            "recency_days / interpurchase_mean_days: how overdue the next purchase is.",
        ),
        (
            "avg_order_value",
            None,
            "ratio",
            "double",
            "spend",
            f"lifetime_revenue / lifetime_orders ({money} per purchase order) before T.",
        ),
        (
            "avg_lines_per_order",
            None,
            "ratio",
            "double",
            "frequency",
            "Purchase lines per purchase order before T.",
        ),
        (
            "avg_line_value",
            None,
            "ratio",
            "double",
            "spend",
            f"Purchase revenue per purchase line ({money}) before T.",
        ),
    ]
    features += [Feature(n, w, a, d, fam, t) for n, w, a, d, fam, t in history]
    lapses = f"n_lapses_{ev.active_window_days}d"
    trends = {f"orders_trend_{w0}d", f"revenue_trend_{w0}d"}
    return tuple(
        Feature(
            **{
                **asdict(f),
                "grows_with_history": f.name in _GROWS_WITH_HISTORY | {lapses},
                "left_censored": f.window is not None or f.name in trends,
            }
        )
        for f in features
    )


_SNAPSHOT_DTYPES: dict[str, Dtype] = {
    "integer": "integer",
    "boolean": "integer",
    "numeric": "double",
    "categorical": "varchar",
}


def _snapshot_features(spec: DatasetSpec) -> tuple[Feature, ...]:
    snap = spec.snap
    out = []
    for feature in snap.features:
        column = None if feature.sql else snap.column(feature.name)
        kind = feature.type or (column.type if column else "numeric")
        description = feature.description or (column.description if column else "")
        out.append(
            Feature(
                name=feature.name,
                window=None,
                aggregation="expression" if feature.sql else "identity",
                dtype=_SNAPSHOT_DTYPES[kind],
                family=feature.family,
                description=description or (feature.sql or feature.name),
            )
        )
    return tuple(out)
