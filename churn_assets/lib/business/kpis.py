"""Business KPIs, defined once: the UI, the asset metadata and the report all read
:data:`KPI_DEFINITIONS`, so a figure never means two things in two places."""

from __future__ import annotations

from typing import Any

import polars as pl

from churn_assets.lib.business.playbook import SCENARIOS

KPI_DEFINITIONS: dict[str, str] = {
    "customers_scored": "Customers scored at the observation date T (for an events dataset: "
    "customers active at T, i.e. with a purchase in the activity window before T).",
    "predicted_churn_rate": "Mean predicted churn probability of the customers scored at T.",
    "monthly_churn_rate": "Share of the customers scored at T who churned within the label "
    "horizon after T (events: no purchase in [T, T + horizon)); only customers whose label is "
    "mature count, and the month shows no figure until all its labels are mature.",
    "retention_rate": "1 - monthly churn rate: share of the customers scored at T who were still "
    "customers at the end of the label horizon.",
    "revenue_at_risk": "Sum over the customers scored at T of churn probability × customer value "
    "(expected revenue over the value horizon, before margin).",
    "top_decile_capture": "Share of the month's actual churners found among the 10% of that "
    "month's customers with the highest predicted risk; random targeting would capture 10%.",
    "expected_saved_revenue": "Sum over the campaign's treated customers of churn probability × "
    "the playbook's uplift of their action × customer value, as a low / mid / high range from "
    "the playbook's assumptions (revenue before margin; an assumption until the holdout "
    "measures the uplift).",
    "expected_net_value": "Sum over the campaign's treated customers of churn probability × "
    "uplift × value × margin - (cost per contact + acceptance × offer cost), low / mid / high.",
}


def monthly_kpis(customers: pl.DataFrame) -> pl.DataFrame:
    """One row per observation date from per-customer rows (customer tables of several months).

    Needs observation_date, churn_probability, value, churned (NULL when
    immature) and is_mature. Columns: observation_date, customers_scored, mature_customers,
    predicted_churn_rate, monthly_churn_rate, retention_rate, revenue_at_risk,
    top_decile_capture (the last three NULL until every label of the month is mature).
    """
    mature = pl.col("is_mature") & pl.col("churned").is_not_null()
    churned = pl.col("churned").cast(pl.Float64)
    return (
        customers.group_by("observation_date")
        .agg(
            customers_scored=pl.len(),
            mature_customers=mature.sum(),
            predicted_churn_rate=pl.col("churn_probability").mean(),
            revenue_at_risk=(pl.col("churn_probability") * pl.col("value")).sum(),
            churn_rate=churned.filter(mature).mean(),
            churners=churned.filter(mature).sum(),
            # Ranked within the month: risk deciles rank against the model's training scores,
            # and a low-churn season may leave decile 10 empty.
            top_churners=churned.filter(
                mature
                & (
                    pl.col("churn_probability").rank("ordinal", descending=True)
                    <= (pl.len() * 0.1).ceil()
                )
            ).sum(),
        )
        .with_columns(
            all_mature=pl.col("mature_customers") == pl.col("customers_scored"),
        )
        .with_columns(
            monthly_churn_rate=pl.when("all_mature").then("churn_rate"),
            top_decile_capture=pl.when(pl.col("all_mature") & (pl.col("churners") > 0)).then(
                pl.col("top_churners") / pl.col("churners")
            ),
        )
        .with_columns(retention_rate=1 - pl.col("monthly_churn_rate"))
        .select(
            "observation_date",
            "customers_scored",
            "mature_customers",
            "predicted_churn_rate",
            "monthly_churn_rate",
            "retention_rate",
            "revenue_at_risk",
            "top_decile_capture",
        )
        .sort("observation_date")
    )


def campaign_kpis(summary: dict[str, Any]) -> dict[str, float]:
    """The campaign KPIs (ranges) from a :class:`~.campaign.CampaignPlan` summary."""
    out: dict[str, float] = {}
    for s in SCENARIOS:
        out[f"expected_saved_revenue_{s}"] = float(summary[f"expected_saved_revenue_{s}"])
        out[f"expected_net_value_{s}"] = float(summary[f"expected_net_value_{s}"])
    return out
