"""The executive report: one self-contained HTML page per run, a PDF and the customer list.

Every figure is read from the other business assets' tables (the stored plan, experiment
design, backtests, KPIs, value model and check, typical feature values) and from the scoring
model's own evaluation run in MLflow; the report recomputes totals from the per-customer rows
and lists where each section comes from. Files land in
``<reports>/<dataset>/business/<T>/<run id>/``: ``executive_report.html`` (plots inlined),
``executive_report.pdf`` (headless Chromium, when installed) and ``customers.csv`` (every scored
customer with probability, value, reasons in words, action and group: the rows the report's
totals reconcile with). The metadata links them through the reports server.
"""

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from churn_assets import metadata
from churn_assets.defs.business.backtest import BACKTEST_TABLE, stored_backtests
from churn_assets.defs.business.campaign import CAMPAIGNS_TABLE, PLAN_TABLE, stored_plan
from churn_assets.defs.business.cohorts import REFERENCES_TABLE
from churn_assets.defs.business.common import (
    business_asset,
    read_playbook,
    read_rows,
    require_rows,
    rounded,
    table_name,
)
from churn_assets.defs.business.experiment import DESIGN_TABLE
from churn_assets.defs.business.kpis import KPIS_TABLE
from churn_assets.defs.business.value import CHECK_TABLE, MODEL_TABLE
from churn_assets.defs.monitoring.common import SCORES_TABLE, observation_date
from churn_assets.defs.monitoring.performance import evaluation_metrics
from churn_assets.lib.business.campaign import TREATMENT
from churn_assets.lib.business.experiment import ExperimentDesign
from churn_assets.lib.business.report import ReportInputs, build_report, html_to_pdf
from churn_assets.lib.business.value_check import ValueCheck
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.resources import DuckDBResource, MLflowResource
from churn_assets.settings import ChurnSettings

REPORT_FILE = "executive_report.html"
PDF_FILE = "executive_report.pdf"
CUSTOMERS_FILE = "customers.csv"
QUALITY_METRICS = (
    "roc_auc",
    "roc_auc_ci_low",
    "roc_auc_ci_high",
    "top_decile_lift",
    "top_decile_capture",
    "ece",
    "positive_rate",
    "n",
)
"""The model's test figures the report puts in words (logged on its MLflow run)."""
SNAPSHOT_BACKTEST = (
    "No backtest: a snapshot has no outcomes after its date, and its churn labels are the ones "
    "the model was trained on, so 'whom the plan would have reached' would be measured in-sample."
)
CUSTOMER_COLUMNS = {
    "observation_date": None,
    "customer_id": None,
    "churn_probability": 4,
    "risk_decile": None,
    "value": 2,
    "revenue_at_risk": 2,
    "value_tier": None,
    "reason_family": None,
    "main_reason": None,
    "reason_1": None,
    "reason_2": None,
    "reason_3": None,
    "action_mid": None,
    "net_value_mid": 2,
    "rank": None,
    "group": None,
    "planned_cost": 2,
}
"""The downloadable customer list: column → decimals (None: as is)."""


class ReportConfig(dg.Config):
    pdf: bool = Field(
        default=True, description="Also print the report to PDF with headless Chromium."
    )


def customer_list(customers: pl.DataFrame) -> pl.DataFrame:
    """Every scored customer, riskiest first, figures rounded, actions and reasons in words."""
    return (
        customers.select(
            [
                pl.col(c).round(d) if d is not None else pl.col(c)
                for c, d in CUSTOMER_COLUMNS.items()
            ]
        )
        .rename({"action_mid": "recommended_action", "net_value_mid": "expected_net_value"})
        .sort(["churn_probability", "customer_id"], descending=[True, False])
    )


def model_quality(
    context: dg.AssetExecutionContext, dataset: str, version: str
) -> dict[str, float]:
    """The scoring version's test figures, or none (said in the log and the report) when the
    registry does not know the version."""
    from mlflow.exceptions import MlflowException

    try:
        return evaluation_metrics(dataset, version, QUALITY_METRICS)
    except MlflowException as error:
        context.log.warning(f"no evaluation figures for {dataset} v{version}: {error}")
        return {}


def sources(spec: DatasetSpec) -> dict[str, str]:
    """Where each section's figures come from (shown at the end of the report)."""
    key = spec.key
    out = {
        "Headline, cohort map, top reasons, campaign plan": f"{key(PLAN_TABLE)} → "
        f"{table_name(spec, PLAN_TABLE)} (per customer) and {table_name(spec, CAMPAIGNS_TABLE)}",
        "Typical values behind 'low' / 'high'": f"{key('cohorts')} → "
        f"{table_name(spec, REFERENCES_TABLE)}",
        "Power and read-out": f"{key(DESIGN_TABLE)} → {table_name(spec, DESIGN_TABLE)}",
        "KPI trend": f"{key('business_kpis')} → {table_name(spec, KPIS_TABLE)}",
        "Customer value method and its check": f"{key('customer_value')} → "
        f"{table_name(spec, MODEL_TABLE)}, {table_name(spec, CHECK_TABLE)}",
        "Model quality": f"{key('model_selection')} (the scoring version's MLflow run)",
        "Assumptions": f"{key('retention_actions')} (the playbook file)",
    }
    if spec.kind == "events":
        out["Backtest"] = f"{key('campaign_backtest')} → {table_name(spec, BACKTEST_TABLE)}"
    return out


def _value_inputs(
    duckdb: DuckDBResource, spec: DatasetSpec, day: date
) -> tuple[str, ValueCheck | None]:
    method = require_rows(duckdb, spec, MODEL_TABLE, day, "customer_value")["method"][0]
    checks = read_rows(duckdb, spec, CHECK_TABLE, day)
    check = ValueCheck.from_dict(checks.row(0, named=True)) if checks.height else None
    return str(method), check


def _scoring_model(duckdb: DuckDBResource, spec: DatasetSpec, day: date) -> tuple[str, str]:
    with duckdb.connect(read_only=True) as con:
        row = con.execute(
            f"SELECT any_value(model_name), any_value(model_version) "
            f"FROM {spec.db_schema('monitoring')}.{SCORES_TABLE} WHERE observation_date = ?",
            [day],
        ).fetchone()
    if not row or row[1] is None:
        raise dg.Failure(f"no scores at {day}: materialize {spec.key(SCORES_TABLE)} first")
    return str(row[0]), str(row[1])


def write_files(folder: Path, html: str, customers: pl.DataFrame, pdf: bool) -> Mapping[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {"report": folder / REPORT_FILE, "customers_csv": folder / CUSTOMERS_FILE}
    files["report"].write_text(html, encoding="utf-8")
    customer_list(customers).write_csv(files["customers_csv"])
    printed = html_to_pdf(files["report"], folder / PDF_FILE) if pdf else None
    return files | ({"pdf": printed} if printed else {})


def build_report_asset(spec: DatasetSpec) -> dg.AssetsDefinition:
    registry_features = feature_set(spec)
    upstream = [PLAN_TABLE, DESIGN_TABLE, "business_kpis", "customer_value", "cohorts"]
    if spec.kind == "events":
        upstream.append("campaign_backtest")

    @business_asset(
        spec,
        "executive_report",
        upstream,
        {"html", "pdf"},
        "The executive report of the observation date, one per run: headline numbers, the cohort "
        "map, top reasons in words, the campaign with its holdout and power, the backtest, the "
        "KPI trend, model quality in plain words and every assumption; a self-contained HTML "
        "page, its PDF and the customer list (CSV) under the reports folder, linked here.",
        uses_playbook=True,
    )
    def executive_report(
        context: dg.AssetExecutionContext,
        config: ReportConfig,
        settings: ChurnSettings,
        duckdb: DuckDBResource,
        mlflow: MLflowResource,  # points MLflow at the registry holding the model's test run
    ) -> dg.MaterializeResult:
        day = observation_date(spec, context)
        playbook = read_playbook(spec)
        plan, _ = stored_plan(duckdb, spec, day)
        design = ExperimentDesign.from_dict(
            require_rows(duckdb, spec, DESIGN_TABLE, day, DESIGN_TABLE).row(0, named=True)
        )
        model_name, model_version = _scoring_model(duckdb, spec, day)
        quality = model_quality(context, spec.name, model_version)
        method, check = _value_inputs(duckdb, spec, day)
        references = read_rows(duckdb, spec, REFERENCES_TABLE, day)
        report = build_report(
            ReportInputs(
                dataset=spec.name,
                observation_date=day,
                plan=plan,
                playbook=playbook,
                experiment=design,
                backtests=stored_backtests(duckdb, spec, day) if spec.kind == "events" else (),
                kpi_trend=read_rows(duckdb, spec, KPIS_TABLE, day, until=True),
                model_quality=quality,
                model_name=model_name,
                model_version=model_version,
                value_method=method,
                value_check=check,
                feature_descriptions={f.name: f.description for f in registry_features.features},
                feature_references=dict(
                    zip(references["feature"], references["typical_value"], strict=True)
                )
                if references.height
                else {},
                backtest_unavailable=SNAPSHOT_BACKTEST
                if spec.kind == "snapshot"
                else "This month's labels have not matured yet: nothing to backtest.",
                downloads={"every scored customer with reasons and actions (CSV)": CUSTOMERS_FILE},
                sources=sources(spec),
            )
        )
        folder = (
            Path(settings.reports_dir)
            / spec.name
            / "business"
            / day.isoformat()
            / context.run_id[:8]
        )
        files = write_files(folder, report.html, plan.customers, config.pdf)
        links: dict[str, Any] = {}
        for name, path in files.items():
            links |= metadata.report_links(settings, name, path)
        treated = customer_list(plan.customers.filter(pl.col("group") == TREATMENT))
        return dg.MaterializeResult(
            metadata={
                "observation_date": day.isoformat(),
                **links,
                **rounded(report.headline),
                "model": f"{model_name} v{model_version}",
                **{f"model_{k}": v for k, v in rounded(quality).items()},
                "pdf_printed": "pdf" in files,
                "contact_list": metadata.table(
                    treated.sort("rank").select(
                        "rank",
                        "customer_id",
                        "churn_probability",
                        "value",
                        "recommended_action",
                        "main_reason",
                    ),
                    max_rows=25,
                    digits=3,
                ),
            }
        )

    return executive_report
