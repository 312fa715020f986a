"""The executive report: one self-contained HTML page per dataset and observation date.

Everything shown is computed here from the inputs (the campaign plan's per-customer rows, the
playbook, the experiment design, backtests, KPI trend, model metrics): no figure is typed in.
:func:`build_report` returns the HTML *and* the headline figures as a dict, so a test can check
that every total reconciles with the per-customer rows. Plots are matplotlib PNGs embedded as
base64 (Agg backend: assets run without a display), so the file can be mailed or archived as
is; :func:`html_to_pdf` prints it with headless Chromium when one is installed.
"""

from __future__ import annotations

import base64
import html
import io
import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: assets run in worker processes without a display

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from churn_assets.lib.business.backtest import NO_MEASURED_UPLIFT, BacktestResult, backtest_table
from churn_assets.lib.business.campaign import CONTROL, TREATMENT, CampaignPlan
from churn_assets.lib.business.cohorts import NO_REASON, VALUE_TIERS, cohort_grid, cohort_table
from churn_assets.lib.business.experiment import ExperimentDesign
from churn_assets.lib.business.kpis import KPI_DEFINITIONS
from churn_assets.lib.business.playbook import SCENARIOS, Playbook
from churn_assets.lib.business.reasons import top_reasons
from churn_assets.lib.business.value_check import ValueCheck

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
)


# ---------------------------------------------------------------------------------------------
# Formatting: every number on the page goes through one of these.


def fmt_int(value: float | int) -> str:
    return f"{round(value):,}"


def fmt_money(value: float, currency: str) -> str:
    """'GBP 12,345' (whole units from 100 on, cents below), '-' for NaN."""
    if value is None or not math.isfinite(value):
        return "-"
    sign = "-" if value < 0 else ""
    amount = abs(value)
    text = f"{amount:,.0f}" if amount >= 100 else f"{amount:,.2f}"
    return f"{sign}{currency} {text}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 100:.{digits}f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(fig: Any) -> str:
    try:
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(png: str, alt: str) -> str:
    return f"<figure><img alt='{_esc(alt)}' src='data:image/png;base64,{png}'/></figure>"


# ---------------------------------------------------------------------------------------------
# Headline figures


def headline_figures(plan: CampaignPlan, experiment: ExperimentDesign) -> dict[str, Any]:
    """The numbers at the top of the report, each a sum or count over ``plan.customers``."""
    rows = plan.customers
    treated = rows.filter(pl.col("group") == TREATMENT)
    out: dict[str, Any] = {
        "customers_scored": rows.height,
        "expected_churners": float(rows["churn_probability"].sum()),
        "predicted_churn_rate": float(rows["churn_probability"].sum()) / max(rows.height, 1),
        "total_value": float(rows["value"].sum()),
        "revenue_at_risk": float((rows["churn_probability"] * rows["value"]).sum()),
        "eligible": int(((rows["net_value_mid"] > 0) & (rows["rank"] > 0)).sum()),
        "selected": int(rows["selected"].sum()),
        "treatment": treated.height,
        "control": rows.filter(pl.col("group") == CONTROL).height,
        "budget": plan.budget,
        "planned_spend": float(rows["planned_cost"].sum()),
    }
    for s in SCENARIOS:
        out[f"expected_saved_revenue_{s}"] = float(treated[f"expected_saved_revenue_{s}"].sum())
        out[f"expected_net_value_{s}"] = float(treated[f"plan_net_value_{s}"].sum())
    out["srm_p_value"] = plan.srm.p_value
    out["srm_passed"] = plan.srm.passed
    out["experiment_verdict"] = experiment.verdict
    out["achieved_power"] = experiment.achieved_power
    return out


def backtest_headline(result: BacktestResult) -> dict[str, Any]:
    """The report month's own backtest figures (when its labels have matured)."""
    out: dict[str, Any] = {
        "backtest_targeted": result.targeted,
        "backtest_churners_reached": result.churners_reached,
        "backtest_random_churners": result.random_churners_expected,
        "backtest_churner_lift": result.churner_lift,
        "backtest_revenue_lost_reached": result.revenue_lost_reached,
        "backtest_random_revenue": result.random_revenue_expected,
    }
    return out | {f"backtest_roi_{s}": result.roi[s] for s in SCENARIOS}


# ---------------------------------------------------------------------------------------------
# Plain-words model quality


def model_quality_sentences(metrics: Mapping[str, Any]) -> list[str]:
    """Evaluation metrics (as :func:`churn_assets.lib.evaluation.evaluate` names them) in words."""
    out: list[str] = []
    auc = metrics.get("roc_auc")
    if auc is not None:
        ci = ""
        if metrics.get("roc_auc_ci_low") is not None and metrics.get("roc_auc_ci_high"):
            ci = (
                f", 95% interval {fmt_num(metrics['roc_auc_ci_low'])}"
                f"-{fmt_num(metrics['roc_auc_ci_high'])}"
            )
        out.append(
            f"Given one customer who churned and one who stayed, the model gives the churner the "
            f"higher risk {fmt_pct(auc, 0)} of the time (ROC-AUC {fmt_num(auc)}{ci}; 50% is a "
            "coin flip)."
        )
    lift, capture = metrics.get("top_decile_lift"), metrics.get("top_decile_capture")
    if lift is not None:
        text = (
            f"The riskiest 10% of customers churn {fmt_num(lift, 1)} times as often as the "
            "average customer"
        )
        if capture is not None:
            text += f" and hold {fmt_pct(capture, 0)} of all churners (random: 10%)"
        out.append(text + ".")
    ece = metrics.get("ece")
    if ece is not None:
        out.append(
            f"Predicted probabilities are off by {fmt_num(ece * 100, 1)} percentage points on "
            "average (expected calibration error), so sums of probabilities can be read as "
            "expected numbers of churners"
            + (" to that precision." if ece <= 0.05 else " only roughly.")
        )
    base = metrics.get("positive_rate")
    if base is not None:
        n = metrics.get("n")
        size = f" of {fmt_int(n)} test customers" if n is not None else ""
        out.append(f"On the test data{size}, {fmt_pct(base)} churned.")
    return out


def value_check_sentences(check: ValueCheck, currency: str) -> list[str]:
    """The customer-value out-of-time check in words, partial windows said as such."""
    window = (
        f"the {check.horizon_days} days after it"
        if check.full_horizon
        else f"the {check.covered_days} days after it that the data covers (a partial window "
        f"of the {check.horizon_days}-day horizon: both sides cut to those days)"
    )
    beaten = check.mae < check.naive_mae and check.spearman > check.naive_spearman
    verdict = (
        "It beats the naive guess on both counts."
        if beaten
        else "It does not beat the naive guess on both counts: read customer values as a rough "
        "ranking, not a revenue forecast, and plan budgets on the low scenario."
    )
    return [
        f"Customer value was checked out of time: fitted on purchases before "
        f"{check.observation_date}, predicted for {window}.",
        f"Across {fmt_int(check.n_customers)} customers it predicted "
        f"{fmt_money(check.total_predicted, currency)} in total against "
        f"{fmt_money(check.total_realized, currency)} realized "
        f"({fmt_num(check.total_ratio)}x); rank correlation {fmt_num(check.spearman)}, mean "
        f"absolute error {fmt_money(check.mae, currency)} per customer (the naive 'same as last "
        f"year' guess: {fmt_money(check.naive_mae, currency)}, rank correlation "
        f"{fmt_num(check.naive_spearman)}). {verdict}",
    ]


# ---------------------------------------------------------------------------------------------
# Plots


def cohort_heatmap_png(grid: pl.DataFrame, currency: str) -> str:
    """Risk decile (rows, riskiest on top) × value tier, cell = revenue at risk."""
    values = grid.select(list(VALUE_TIERS)).to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    image = ax.imshow(values, cmap="Reds", aspect="auto")
    ax.set_xticks(range(len(VALUE_TIERS)), [f"{t} value" for t in VALUE_TIERS])
    ax.set_yticks(range(grid.height), [f"decile {d}" for d in grid["risk_decile"].to_list()])
    ax.set_xlabel("customer value tier (tertiles)")
    ax.set_ylabel("predicted risk (10 = riskiest)")
    ax.set_title(f"Revenue at risk ({currency})")
    top = values.max() if values.size else 0
    for (i, j), v in np.ndenumerate(values):
        colour = "white" if top and v > top * 0.6 else "black"
        ax.text(j, i, f"{v:,.0f}", ha="center", va="center", fontsize=8, color=colour)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _png(fig)


def kpi_trend_png(trend: pl.DataFrame, currency: str) -> str:
    dates = trend["observation_date"].to_list()
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(dates, trend["predicted_churn_rate"].to_numpy() * 100, marker="o", label="predicted")
    realized = trend["monthly_churn_rate"].cast(pl.Float64).to_numpy() * 100
    ax.plot(dates, realized, marker="s", label="realized (mature months)")
    ax.set_ylabel("churn rate (%)")
    ax.set_ylim(bottom=0)
    right = ax.twinx()
    right.bar(dates, trend["revenue_at_risk"].to_numpy(), width=20, alpha=0.2, color="grey")
    right.set_ylabel(f"revenue at risk ({currency})")
    right.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_zorder(right.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Churn rate and revenue at risk by month")
    fig.autofmt_xdate()
    return _png(fig)


def backtest_png(table: pl.DataFrame) -> str:
    dates = table["observation_date"].to_list()
    x = np.arange(len(dates))
    expected = table["random_churners_expected"].to_numpy()
    low = expected - table["random_churners_p05"].to_numpy()
    high = table["random_churners_p95"].to_numpy() - expected
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.bar(x - 0.2, table["churners_reached"].to_numpy(), width=0.4, label="plan's targets")
    ax.bar(x + 0.2, expected, width=0.4, yerr=[low, high], capsize=3, label="random (5-95%)")
    ax.set_xticks(x, [d.strftime("%Y-%m") for d in dates], rotation=45, ha="right")
    ax.set_ylabel("actual churners reached")
    ax.legend(fontsize=8)
    ax.set_title("Churners reached: plan vs random targeting of the same size")
    return _png(fig)


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class ReportInputs:
    dataset: str
    observation_date: date
    plan: CampaignPlan
    playbook: Playbook
    experiment: ExperimentDesign
    backtests: Sequence[BacktestResult] = ()
    kpi_trend: pl.DataFrame | None = None
    model_quality: Mapping[str, Any] = field(default_factory=dict)
    model_name: str = ""
    model_version: str = ""
    value_method: str = ""
    value_check: ValueCheck | None = None
    feature_descriptions: Mapping[str, str] = field(default_factory=dict)
    feature_references: Mapping[str, float] = field(default_factory=dict)
    backtest_unavailable: str = "No month has matured labels yet: nothing to backtest."
    """Shown instead of the backtest when there is none (a snapshot dataset says why)."""
    downloads: Mapping[str, str] = field(default_factory=dict)
    """Files published next to the report: link text → href relative to the report."""
    sources: Mapping[str, str] = field(default_factory=dict)
    """Section of the report → the asset (and table) its figures come from."""


@dataclass(frozen=True)
class BusinessReport:
    html: str
    headline: dict[str, Any]
    cohorts: pl.DataFrame
    reasons: pl.DataFrame


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 2px solid #eee; padding-bottom: 0.2em;
       margin-top: 1.8em; page-break-after: avoid; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 190px;
        flex: 1; page-break-inside: avoid; }
.card .big { font-size: 1.5em; font-weight: bold; } .card .small { color: #666; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; page-break-inside: auto; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; } tr { page-break-inside: avoid; }
figure { margin: 0.6em 0; } img { max-width: 100%; }
.note { background: #fff8e1; border-left: 4px solid #f9a825; padding: 8px 12px; }
.bad { color: #c62828; font-weight: bold; } .good { color: #2e7d32; font-weight: bold; }
dt { font-weight: bold; } dd { margin: 0 0 0.5em 1.2em; }
"""


def _card(title: str, big: str, small: str = "") -> str:
    return (
        f"<div class='card'><div>{_esc(title)}</div><div class='big'>{_esc(big)}</div>"
        f"<div class='small'>{_esc(small)}</div></div>"
    )


def _range(values: Mapping[str, float], currency: str) -> str:
    return (
        f"{fmt_money(values['low'], currency)} to {fmt_money(values['high'], currency)} "
        f"(mid {fmt_money(values['mid'], currency)})"
    )


def build_report(inputs: ReportInputs) -> BusinessReport:
    """Render the report and return it with its headline figures, cohorts and reasons."""
    pb, plan, experiment = inputs.playbook, inputs.plan, inputs.experiment
    cur = pb.currency
    head = headline_figures(plan, experiment)
    customers = plan.customers
    cohorts = cohort_table(customers)
    reasons = top_reasons(customers, inputs.feature_descriptions, inputs.feature_references)
    saved = {s: head[f"expected_saved_revenue_{s}"] for s in SCENARIOS}
    net = {s: head[f"expected_net_value_{s}"] for s in SCENARIOS}

    parts: list[str] = []
    model = " ".join(
        x for x in (inputs.model_name, inputs.model_version and f"v{inputs.model_version}") if x
    )
    parts.append(
        f"<h1>Customer retention report: {_esc(inputs.dataset)}</h1>"
        f"<p class='sub'>Observation date {inputs.observation_date.isoformat()}"
        + (f" · model {_esc(model)}" if model else "")
        + f" · playbook v{_esc(pb.version)} ({_esc(pb.owner)}) · campaign {_esc(plan.campaign_id)}</p>"
    )

    # Headline numbers
    parts.append("<h2>Headline numbers</h2><div class='cards'>")
    parts.append(
        _card(
            "Customers scored",
            fmt_int(head["customers_scored"]),
            f"{fmt_int(head['expected_churners'])} expected to churn "
            f"({fmt_pct(head['predicted_churn_rate'])})",
        )
    )
    parts.append(
        _card(
            "Revenue at risk",
            fmt_money(head["revenue_at_risk"], cur),
            f"of {fmt_money(head['total_value'], cur)} expected customer value",
        )
    )
    parts.append(
        _card(
            "Campaign",
            f"{fmt_int(head['treatment'])} contacted",
            f"+ {fmt_int(head['control'])} holdout; spend {fmt_money(head['planned_spend'], cur)}"
            f" of {fmt_money(head['budget'], cur)} budget",
        )
    )
    parts.append(
        _card(
            "Expected saved revenue",
            fmt_money(saved["mid"], cur),
            f"range {fmt_money(saved['low'], cur)} to {fmt_money(saved['high'], cur)}",
        )
    )
    parts.append(
        _card(
            "Expected net value",
            fmt_money(net["mid"], cur),
            f"after margin and costs; range {fmt_money(net['low'], cur)} to "
            f"{fmt_money(net['high'], cur)}",
        )
    )
    month = next(
        (b for b in inputs.backtests if b.observation_date == inputs.observation_date), None
    )
    if month is not None:
        head |= backtest_headline(month)
        parts.append(
            _card(
                "Backtest of this month",
                f"{fmt_int(month.churners_reached)} churners reached",
                f"random targeting of the same {fmt_int(month.targeted)}: "
                f"{fmt_int(month.random_churners_expected)}; revenue lost reached "
                f"{fmt_money(month.revenue_lost_reached, cur)} (random "
                f"{fmt_money(month.random_revenue_expected, cur)}); ROI "
                + " / ".join(fmt_pct(month.roi[sc], 0) for sc in SCENARIOS)
                + " (low / mid / high)",
            )
        )
    parts.append("</div>")
    if inputs.downloads:
        parts.append(
            "<p>Download: "
            + " · ".join(
                f"<a href='{_esc(href)}'>{_esc(text)}</a>"
                for text, href in inputs.downloads.items()
            )
            + "</p>"
        )

    # Cohort map
    parts.append("<h2>Cohort map</h2>")
    parts.append(
        "<p>Where the revenue at risk sits: predicted risk decile × customer value tier (value "
        "tertiles of the scored customers). Revenue at risk = Σ churn probability × value.</p>"
    )
    parts.append(_img(cohort_heatmap_png(cohort_grid(cohorts), cur), "cohort heatmap"))
    parts.append("<p>The ten cohorts with the most revenue at risk:</p>")
    parts.append(
        _table(
            [
                "risk decile",
                "value tier",
                "main reason",
                "customers",
                "mean risk",
                "revenue at risk",
                "realized churn",
                "calibration gap",
            ],
            [
                [
                    r["risk_decile"],
                    r["value_tier"],
                    r["reason_family"],
                    fmt_int(r["customers"]),
                    fmt_pct(r["mean_churn_probability"]),
                    fmt_money(r["revenue_at_risk"], cur),
                    fmt_pct(r["realized_churn_rate"]),
                    "-"
                    if r["calibration_gap"] is None
                    else f"{r['calibration_gap'] * 100:+.1f} pts",
                ]
                for r in cohorts.head(10).iter_rows(named=True)
            ],
        )
    )

    # Top reasons
    parts.append("<h2>Top reasons</h2>")
    no_reason = customers.filter(pl.col("reason_family") == NO_REASON).height
    parts.append(
        "<p>Each customer's main reason is the strongest risk-raising driver among their top "
        "three (SHAP contribution in log-odds, positive = raises the risk). Sentences describe "
        "the median customer of the group against the typical scored customer."
        + (
            f" {fmt_int(no_reason)} customers have no risk-raising driver among their top three."
            if no_reason
            else ""
        )
        + "</p>"
    )
    parts.append(
        _table(
            ["reason", "family", "what it measures", "customers", "share", "revenue at risk"],
            [
                [
                    r["reason"],
                    r["family"],
                    r["description"],
                    fmt_int(r["customers"]),
                    fmt_pct(r["share_of_customers"]),
                    fmt_money(r["revenue_at_risk"], cur),
                ]
                for r in reasons.iter_rows(named=True)
            ],
        )
    )

    # Campaign plan
    s = plan.summary
    parts.append("<h2>Campaign plan</h2>")
    parts.append(
        f"<p>Customers are ranked by expected net value (mid assumptions); "
        f"{fmt_int(head['eligible'])} have a positive one. Within the budget of "
        f"{fmt_money(plan.budget, cur)} ({'committed cost: contact + offer, as if every offer were accepted' if plan.cost_basis == 'committed' else 'expected cost'}), "
        f"{fmt_int(head['selected'])} are selected; {fmt_pct(plan.control_share, 0)} of them "
        f"are held out at random as a control group, leaving {fmt_int(head['treatment'])} to "
        f"contact for a planned spend of {fmt_money(head['planned_spend'], cur)}.</p>"
    )
    action_rows = (
        customers.filter(pl.col("group") == TREATMENT)
        .group_by("action_mid")
        .agg(
            n=pl.len(),
            spend=pl.col("planned_cost").sum(),
            saved=pl.col("expected_saved_revenue_mid").sum(),
            net=pl.col("plan_net_value_mid").sum(),
        )
        .sort("n", descending=True)
    )
    parts.append(
        _table(
            [
                "action",
                "customers contacted",
                "planned spend",
                "expected saved revenue (mid)",
                "expected net value (mid)",
            ],
            [
                [
                    r["action_mid"],
                    fmt_int(r["n"]),
                    fmt_money(r["spend"], cur),
                    fmt_money(r["saved"], cur),
                    fmt_money(r["net"], cur),
                ]
                for r in action_rows.iter_rows(named=True)
            ],
        )
    )
    parts.append(
        _table(
            [
                "scenario",
                "expected spend",
                "expected saved revenue",
                "expected net value",
                "net value forgone in the holdout",
            ],
            [
                [
                    sc,
                    fmt_money(s[f"expected_spend_{sc}"], cur),
                    fmt_money(saved[sc], cur),
                    fmt_money(net[sc], cur),
                    fmt_money(s[f"forgone_net_value_{sc}"], cur),
                ]
                for sc in SCENARIOS
            ],
        )
    )
    srm = plan.srm
    parts.append(
        "<p><b>Holdout.</b> Assignment by a stable hash of (campaign id, customer id): re-running "
        f"the plan never moves anyone. Split check (sample-ratio mismatch, chi-square): "
        f"{fmt_int(srm.n_treatment)} treated vs {fmt_int(srm.n_control)} control for an intended "
        f"{fmt_pct(srm.expected_control_share, 0)} holdout, p = {srm.p_value:.3g} → "
        + (
            "<span class='good'>pass</span>"
            if srm.passed
            else "<span class='bad'>FAIL: the split is broken, do not read results</span>"
        )
        + f" (threshold {srm.threshold:g}).</p>"
    )
    verdict_class = "good" if experiment.verdict == "adequate" else "bad"
    parts.append(
        f"<p><b>Power.</b> <span class='{verdict_class}'>{_esc(experiment.verdict)}</span>. "
        f"{_esc(experiment.explanation)}"
        + (
            f" Read-out date: {experiment.readout_date.isoformat()}."
            if experiment.readout_date
            else ""
        )
        + f" (α {fmt_num(experiment.alpha)}, target power {fmt_pct(experiment.power, 0)}, "
        "two-sided test of two proportions.)</p>"
    )

    # Backtest
    parts.append("<h2>Backtest on matured months</h2>")
    if inputs.backtests:
        table = backtest_table(list(inputs.backtests))
        parts.append(
            f"<p>For each month whose labels have matured: of the customers the plan would have "
            f"selected, how many actually churned within "
            f"{inputs.backtests[0].horizon_days} days and how much revenue they took with "
            "them (revenue lost = a churner's revenue in the same number of days before T), "
            "against random targeting of the same number of customers. The ROI counts only the "
            "revenue lost within that horizon, not the customer's remaining lifetime: it is a "
            "lower bound.</p>"
        )
        parts.append(_img(backtest_png(table), "backtest"))
        parts.append(
            _table(
                [
                    "month",
                    "targeted",
                    "churners reached",
                    "random (5-95%)",
                    "lift",
                    "revenue lost reached",
                    "random",
                    "ROI low / mid / high",
                ],
                [
                    [
                        r["observation_date"].strftime("%Y-%m"),
                        fmt_int(r["targeted"]),
                        fmt_int(r["churners_reached"]),
                        f"{fmt_int(r['random_churners_expected'])} "
                        f"({fmt_int(r['random_churners_p05'])}-{fmt_int(r['random_churners_p95'])})",
                        f"{fmt_num(r['churner_lift'])}x",
                        fmt_money(r["revenue_lost_reached"], cur),
                        fmt_money(r["random_revenue_expected"], cur),
                        " / ".join(fmt_pct(r[f"roi_{sc}"], 0) for sc in SCENARIOS),
                    ]
                    for r in table.iter_rows(named=True)
                ],
            )
        )
        parts.append(f"<p class='note'>{_esc(NO_MEASURED_UPLIFT)}</p>")
    else:
        parts.append(f"<p>{_esc(inputs.backtest_unavailable)}</p>")

    # KPI trend
    parts.append("<h2>KPI trend</h2>")
    trend = inputs.kpi_trend
    if trend is not None and trend.height:
        if trend.height > 1:  # one month is a row of the table, not a trend
            parts.append(_img(kpi_trend_png(trend, cur), "kpi trend"))
        parts.append(
            _table(
                [
                    "month",
                    "customers scored",
                    "predicted churn",
                    "realized churn",
                    "retention",
                    "revenue at risk",
                    "top-decile capture",
                ],
                [
                    [
                        r["observation_date"].strftime("%Y-%m-%d"),
                        fmt_int(r["customers_scored"]),
                        fmt_pct(r["predicted_churn_rate"]),
                        fmt_pct(r["monthly_churn_rate"]),
                        fmt_pct(r["retention_rate"]),
                        fmt_money(r["revenue_at_risk"], cur),
                        fmt_pct(r["top_decile_capture"]),
                    ]
                    for r in trend.iter_rows(named=True)
                ],
            )
        )
    else:
        parts.append("<p>No KPI history yet.</p>")

    # Model quality
    parts.append("<h2>Model quality in plain words</h2><ul>")
    sentences = model_quality_sentences(inputs.model_quality)
    if inputs.value_check is not None:
        sentences += value_check_sentences(inputs.value_check, cur)
    parts.extend(f"<li>{_esc(x)}</li>" for x in sentences or ["No evaluation figures given."])
    parts.append("</ul>")

    # Assumptions
    parts.append("<h2>Assumptions</h2>")
    parts.append(
        f"<p>Playbook <b>v{_esc(pb.version)}</b>, owner {_esc(pb.owner)}, margin rate "
        f"{fmt_pct(pb.margin_rate, 0)}. Expected net value of an action = churn probability × "
        "uplift × value × margin − (cost per contact + acceptance × offer cost); the offer is "
        "only paid when accepted. Uplift and acceptance are assumptions until a holdout "
        "measures them.</p>"
    )
    parts.append(
        _table(
            [
                "action",
                "for reasons",
                "channel",
                "cost per contact",
                "offer cost",
                "acceptance low/mid/high",
                "uplift low/mid/high",
            ],
            [
                [
                    a.name,
                    ", ".join(a.families),
                    a.channel,
                    fmt_money(a.cost_per_contact, cur),
                    fmt_money(a.offer_cost, cur),
                    " / ".join(fmt_pct(a.acceptance[sc], 0) for sc in SCENARIOS),
                    " / ".join(fmt_pct(a.uplift[sc], 0) for sc in SCENARIOS),
                ]
                for a in pb.actions
            ],
        )
    )
    if inputs.value_method:
        parts.append(f"<p><b>Customer value.</b> {_esc(inputs.value_method)}</p>")
    parts.append("<dl>")
    parts.extend(
        f"<dt>{_esc(name.replace('_', ' '))}</dt><dd>{_esc(text)}</dd>"
        for name, text in KPI_DEFINITIONS.items()
    )
    parts.append("</dl>")
    if inputs.sources:
        parts.append("<h2>Where the figures come from</h2>")
        parts.append(_table(["section", "source"], inputs.sources.items()))

    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Retention report {_esc(inputs.dataset)} {inputs.observation_date}</title>"
        f"<style>{_CSS}</style></head><body>" + "\n".join(parts) + "</body></html>"
    )
    return BusinessReport(html=page, headline=head, cohorts=cohorts, reasons=reasons)


def html_to_pdf(
    source: str | Path, pdf_path: Path, chromium: str = CHROMIUM, timeout: float = 120.0
) -> Path | None:
    """Print an HTML page (a string or a file) to PDF with headless Chromium.

    Returns the PDF path, or None when no Chromium is installed at ``chromium`` (or on PATH
    under that name): the HTML stays the primary artefact. Raises when Chromium runs but fails.
    """
    binary = chromium if Path(chromium).exists() else shutil.which(chromium)
    if not binary:
        return None
    pdf_path = Path(pdf_path)
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="churn-report-") as tmp:
        page = Path(source) if isinstance(source, Path) else Path(tmp) / "report.html"
        if not isinstance(source, Path):
            page.write_text(source, encoding="utf-8")
        # A private profile directory: concurrent prints never fight over a profile lock.
        command = [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--print-to-pdf={pdf_path}",
            page.resolve().as_uri(),
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    if result.returncode != 0 or not pdf_path.exists() or pdf_path.stat().st_size == 0:
        raise RuntimeError(
            f"chromium could not print {pdf_path} (exit {result.returncode}): "
            f"{result.stderr.strip()[-500:]}"
        )
    return pdf_path
