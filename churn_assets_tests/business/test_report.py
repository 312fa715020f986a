"""Executive report: every headline figure reconciles with the per-customer rows, the page is
self-contained and readable, and it prints to PDF."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from churn_assets.lib.business.backtest import backtest_plan
from churn_assets.lib.business.campaign import CONTROL, TREATMENT
from churn_assets.lib.business.kpis import monthly_kpis
from churn_assets.lib.business.planning import MonthPlan, plan_month
from churn_assets.lib.business.playbook import SCENARIOS, Playbook, parse_playbook
from churn_assets.lib.business.report import (
    ReportInputs,
    build_report,
    fmt_int,
    fmt_money,
    fmt_pct,
    html_to_pdf,
)
from churn_assets_tests.business.fixtures import (
    DESCRIPTIONS,
    FAMILIES,
    PLAYBOOK_DATA,
    synthetic_month,
)

MONTHS = [date(2011, 4, 1), date(2011, 5, 1), date(2011, 6, 1)]


def _month(playbook: Playbook, t: date, seed: int, mature: bool) -> tuple[MonthPlan, dict]:
    data = synthetic_month(1500, seed=seed, observation_date=t, mature=mature)
    plan = plan_month(
        data["scores"],
        data["values"],
        FAMILIES,
        playbook,
        dataset="shop",
        observation_date=t,
        horizon_days=90,
        labels=data["labels"],
        budget=2500,
    )
    return plan, data


@pytest.fixture(scope="module")
def report_and_inputs():
    playbook = parse_playbook(PLAYBOOK_DATA, "shop/playbook.yaml")
    months, backtests = [], []
    for i, t in enumerate(MONTHS):
        month, data = _month(playbook, t, seed=10 + i, mature=t < MONTHS[-1])
        months.append(month)
        if t < MONTHS[-1]:
            outcomes = data["labels"].join(data["trailing"], on="customer_id")
            backtests.append(
                backtest_plan(
                    month.customers, outcomes, playbook, observation_date=t, horizon_days=90
                )
            )
    current = months[-1]
    inputs = ReportInputs(
        dataset="shop",
        observation_date=current.observation_date,
        plan=current.plan,
        playbook=playbook,
        experiment=current.experiment,
        backtests=backtests,
        kpi_trend=monthly_kpis(pl.concat([m.customers for m in months], how="diagonal_relaxed")),
        model_quality={"roc_auc": 0.7711, "top_decile_lift": 1.9, "ece": 0.05},
        model_name="churn-shop",
        model_version="3",
        value_method="Expected revenue over 365 days (synthetic).",
        feature_descriptions=DESCRIPTIONS,
        feature_references={"recency_days": 60.0, "revenue_180d": 100.0},
    )
    return build_report(inputs), inputs


def test_headline_figures_reconcile_with_per_customer_rows(report_and_inputs):
    report, inputs = report_and_inputs
    rows = inputs.plan.customers
    head = report.headline
    treated = rows.filter(pl.col("group") == TREATMENT)
    assert head["customers_scored"] == rows.height == 1500
    assert head["expected_churners"] == pytest.approx(rows["churn_probability"].sum())
    assert head["revenue_at_risk"] == pytest.approx(
        sum(p * v for p, v in zip(rows["churn_probability"], rows["value"], strict=True))
    )
    assert head["revenue_at_risk"] == pytest.approx(report.cohorts["revenue_at_risk"].sum())
    assert head["total_value"] == pytest.approx(rows["value"].sum())
    assert head["treatment"] == treated.height == inputs.plan.srm.n_treatment
    assert head["control"] == rows.filter(pl.col("group") == CONTROL).height
    assert head["selected"] == head["treatment"] + head["control"] > 0
    assert head["planned_spend"] == pytest.approx(treated["committed_cost"].sum())
    assert head["planned_spend"] <= head["budget"] == 2500
    for s in SCENARIOS:
        saved = sum(
            p * inputs.playbook.action(a).uplift[s] * v
            for p, v, a in zip(
                treated["churn_probability"], treated["value"], treated["action_mid"], strict=True
            )
        )
        assert head[f"expected_saved_revenue_{s}"] == pytest.approx(saved)
        assert head[f"expected_net_value_{s}"] == pytest.approx(
            inputs.plan.summary[f"expected_net_value_{s}"]
        )
    assert (
        head["expected_net_value_low"]
        <= head["expected_net_value_mid"]
        <= head["expected_net_value_high"]
    )
    assert report.cohorts["customers"].sum() == rows.height


def test_page_shows_the_headline_figures_readably(report_and_inputs):
    report, inputs = report_and_inputs
    page, head, cur = report.html, report.headline, inputs.playbook.currency
    for text in (
        fmt_int(head["customers_scored"]),
        fmt_money(head["revenue_at_risk"], cur),
        fmt_money(head["planned_spend"], cur),
        fmt_money(head["expected_saved_revenue_mid"], cur),
        fmt_money(head["expected_net_value_low"], cur),
        fmt_pct(head["predicted_churn_rate"]),
        f"{fmt_int(head['treatment'])} contacted",
    ):
        assert text in page, text
    assert re.search(r"[0-9],[0-9]{3}", page)  # thousands separators
    for section in (
        "Headline numbers",
        "Cohort map",
        "Top reasons",
        "Campaign plan",
        "Backtest on matured months",
        "KPI trend",
        "Model quality in plain words",
        "Assumptions",
    ):
        assert f"<h2>{section}</h2>" in page
    assert page.count("data:image/png;base64,") == 3  # heatmap, backtest, KPI trend
    assert "No uplift is measured" in page
    assert inputs.experiment.verdict in page
    assert "ROC-AUC 0.77" in page
    assert "days since the last purchase is" in page or "spend in the last 180 days is" in page
    # Self-contained and free of raw floats / missing-value leaks.
    assert not re.search(r"(src|href)=['\"]https?:", page)
    assert not re.search(r"\b(nan|None|inf)\b", re.sub(r"base64,[^'\"]+", "", page))
    assert not re.search(r"\d\.\d{5,}", re.sub(r"base64,[^'\"]+", "", page))


def test_prints_to_pdf_with_headless_chromium(report_and_inputs, tmp_path: Path):
    report, _ = report_and_inputs
    pdf = html_to_pdf(report.html, tmp_path / "report.pdf")
    assert pdf is not None and pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 50_000  # the three plots are in it
    assert html_to_pdf(report.html, tmp_path / "x.pdf", chromium="/nonexistent/chromium") is None
