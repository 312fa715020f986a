"""Churn reasons in words: "spend in the last 180 days is low, +0.12".

A SHAP driver is a raw feature name, its value and a signed log-odds contribution. Business
readers need the feature in plain words, whether the value is low or high compared with a
typical customer, and how much it raises the risk. Labels come from, in order: an explicit
label, a few common feature names, a small vocabulary of measures for windowed features
(``revenue_180d`` → "spend in the last 180 days"), the first clause of the feature's registry
description when it reads as a short noun phrase, and finally the name itself in words (with
its reason family when the name does not already say it).

"Low" / "high" compares the value with a reference the caller supplies (typically the median
of the feature over the month's scored customers); without a reference the sentence states the
value instead, because the sign of a SHAP value says which way the risk moves, not whether the
value itself is unusual.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import polars as pl

from churn_assets.lib.business.cohorts import NO_REASON

# Measures of windowed features "<measure>_<w>d", in words.
MEASURE_WORDS: dict[str, str] = {
    "revenue": "spend",
    "spend": "spend",
    "orders": "orders",
    "invoices": "orders",
    "lines": "order lines",
    "returns": "returns and cancellations",
    "return_value": "value returned",
    "distinct_products": "distinct products bought",
    "active_months": "active months",
}
# Common whole-feature names, in words.
FEATURE_WORDS: dict[str, str] = {
    "recency_days": "days since the last purchase",
    "tenure_days": "days since the first purchase",
    "lifetime_orders": "orders to date",
    "lifetime_revenue": "spend to date",
    "avg_order_value": "average order value",
    "max_gap_days": "longest gap between purchases (days)",
    "interpurchase_mean_days": "usual gap between purchases (days)",
    "interpurchase_std_days": "irregularity of the gaps between purchases (days)",
    "recency_to_mean_gap": "time since the last purchase relative to the usual gap",
    "orders_trend_30d": "order trend (last 30 days vs the 30 before)",
    "revenue_trend_30d": "spend trend (last 30 days vs the 30 before)",
    "orders_prior_year_horizon": "orders in the same season last year",
    "n_lapses_90d": "past lapses of over 90 days",
    "observation_month": "calendar month",
    "monthly_charges": "monthly charge",
    "total_charges": "total charged so far",
    "tenure": "tenure in months",
}
_WINDOWED = re.compile(r"^(?P<measure>[a-z_]+?)_(?P<days>\d+)d$")
_PREFIXES = {"n_": "number of ", "avg_": "average ", "is_": "", "has_": ""}
_MAX_DESCRIPTION_LABEL = 45


def _description_label(description: str) -> str | None:
    """The first clause of a registry description, when it reads as a short noun phrase
    (formulas, column names and "1 for ..." flags read worse than the feature's own name)."""
    pieces = re.split(r"\s+in \[|\s+before T\b|\.\s|\.$|;|:", description.strip(), maxsplit=1)
    clause = pieces[0].strip()
    if not clause or len(clause) > _MAX_DESCRIPTION_LABEL or clause[0].isdigit():
        return None
    if any(ch in clause for ch in "()_/[=") or clause.lower().startswith("original"):
        return None
    return clause[0].lower() + clause[1:]


def _humanize(feature: str) -> str:
    """``log_monthly_charges`` → "monthly charges (log)", ``n_addon_services`` → "number of
    addon services", ``orders_trend_30d`` → "orders trend in the last 30 days"."""
    if "_x_" in feature:
        return " × ".join(_humanize(part) for part in feature.split("_x_"))
    name, suffix = feature, ""
    match = _WINDOWED.match(name)
    if match:
        name, suffix = match["measure"], f" in the last {match['days']} days"
    if name.startswith("log_"):
        name, suffix = name[4:], suffix + " (log)"
    prefix = ""
    for start, words in _PREFIXES.items():
        if name.startswith(start):
            name, prefix = name[len(start) :], words
            break
    name = name.replace("_vs_", " vs ").replace("_", " ")
    return f"{prefix}{name}{suffix}"


def feature_label(feature: str, description: str | None = None, family: str | None = None) -> str:
    """The feature in plain words (see module docstring for the order of sources)."""
    match = _WINDOWED.match(feature)
    if feature in FEATURE_WORDS:
        return FEATURE_WORDS[feature]
    if match and match["measure"] in MEASURE_WORDS:
        return f"{MEASURE_WORDS[match['measure']]} in the last {match['days']} days"
    if description and (label := _description_label(description)):
        return label
    words = _humanize(feature)
    if family and family != NO_REASON and family not in words:
        return f"{words} ({family})"
    return words


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


def format_value(value: float) -> str:
    """Readable number: thousands separators, at most two decimals, no trailing zeros."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def reason_sentence(
    feature: str,
    value: object,
    shap: float,
    family: str,
    description: str | None = None,
    reference: float | None = None,
    label: str | None = None,
) -> str:
    """One driver as a sentence, e.g. "spend in the last 180 days is low, +0.12".

    ``shap`` is the signed log-odds contribution (positive raises the churn risk); ``reference``
    the typical value to call the customer's value low or high against.
    """
    if family == NO_REASON or not feature:
        return "no risk-raising driver among the top three"
    name = label or feature_label(feature, description, family)
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        direction = "raises" if shap > 0 else "lowers"
        return f"{name} {direction} the churn risk, {shap:+.2f}"
    number = _number(value)
    if number is None:
        return f"{name} is {value}, {shap:+.2f}"
    if reference is None or not np.isfinite(reference):
        return f"{name} is {format_value(number)}, {shap:+.2f}"
    if np.isclose(number, reference):
        # The value is the common one (e.g. the month-to-month contract most customers have):
        # say it, since "typical" alone hides what the risk comes from.
        return f"{name} is {format_value(number)} (typical), {shap:+.2f}"
    return f"{name} is {'low' if number < reference else 'high'}, {shap:+.2f}"


def driver_sentences(
    frame: pl.DataFrame,
    columns: tuple[str, str, str],
    families: Mapping[str, str],
    descriptions: Mapping[str, str] | None = None,
    references: Mapping[str, float] | None = None,
) -> pl.Series:
    """One sentence per row for the driver held in ``columns`` (feature, value, SHAP), e.g.
    ``("driver_1", "driver_1_value", "driver_1_shap")`` of a scores table or the main reason's
    ``("reason_feature", "reason_value", "reason_shap")`` of a customer table.

    What a downloadable customer list shows next to each score. A row without a driver gets
    the "no risk-raising driver" sentence (a main reason that does not exist), never a blank.
    """
    descriptions = descriptions or {}
    references = references or {}
    feature, value, shap = columns
    labels: dict[str, str] = {}
    out = []
    for name, raw, contribution in zip(
        frame[feature].to_list(), frame[value].to_list(), frame[shap].to_list(), strict=True
    ):
        if name is None or contribution is None:
            out.append(reason_sentence("", None, 0.0, NO_REASON))
            continue
        family = families.get(name, NO_REASON)
        if name not in labels:
            labels[name] = feature_label(name, descriptions.get(name), family)
        out.append(
            reason_sentence(
                name, raw, contribution, family, reference=references.get(name), label=labels[name]
            )
        )
    return pl.Series(feature, out, dtype=pl.String)


def top_reasons(
    customers: pl.DataFrame,
    descriptions: Mapping[str, str] | None = None,
    references: Mapping[str, float] | None = None,
    k: int = 8,
) -> pl.DataFrame:
    """The ``k`` main reasons carrying the most revenue at risk, as sentences.

    From a customer table (reason_feature, reason_value, reason_shap, reason_family,
    churn_probability, value). Columns: reason, family, feature, customers, share_of_customers,
    revenue_at_risk, mean_shap, median_value, typical_value, description. The sentence describes the median
    customer of the group: median value (numeric features) or most common value, mean SHAP.
    """
    descriptions = descriptions or {}
    references = references or {}
    total = customers.height
    grouped = (
        customers.filter(pl.col("reason_feature").is_not_null())
        .with_columns(numeric=pl.col("reason_value").cast(pl.Float64, strict=False))
        .group_by("reason_feature", "reason_family")
        .agg(
            customers=pl.len(),
            revenue_at_risk=(pl.col("churn_probability") * pl.col("value")).sum(),
            mean_shap=pl.col("reason_shap").mean(),
            median_value=pl.col("numeric").median(),
            common_value=pl.col("reason_value").mode().sort().first(),
        )
        .sort(["revenue_at_risk", "reason_feature"], descending=[True, False])
        .head(k)
    )
    rows = []
    for row in grouped.iter_rows(named=True):
        feature = row["reason_feature"]
        value = row["median_value"] if row["median_value"] is not None else row["common_value"]
        reference = references.get(feature)
        rows.append(
            {
                "reason": reason_sentence(
                    feature,
                    value,
                    row["mean_shap"],
                    row["reason_family"],
                    descriptions.get(feature),
                    reference,
                ),
                "family": row["reason_family"],
                "feature": feature,
                "customers": row["customers"],
                "share_of_customers": row["customers"] / total if total else 0.0,
                "revenue_at_risk": row["revenue_at_risk"],
                "mean_shap": row["mean_shap"],
                "median_value": row["median_value"],
                "typical_value": reference,
                "description": descriptions.get(feature, ""),
            }
        )
    schema = {
        "reason": pl.String,
        "family": pl.String,
        "feature": pl.String,
        "customers": pl.Int64,
        "share_of_customers": pl.Float64,
        "revenue_at_risk": pl.Float64,
        "mean_shap": pl.Float64,
        "median_value": pl.Float64,
        "typical_value": pl.Float64,
        "description": pl.String,
    }
    return pl.DataFrame(rows, schema=schema)
