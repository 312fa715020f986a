"""Data-quality and EDA reports on the raw tables, rendered straight into the Dagster UI."""

import dagster as dg

from churn_assets.lib import eda
from churn_assets.lib.metadata import md_table, png_md
from churn_assets.resources import DuckDBResource
from churn_assets.settings import OWNER_DATA, get_settings


def _write_report(name: str, markdown: str) -> str:
    folder = get_settings().reports_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.md"
    path.write_text(markdown)
    return str(path)


@dg.asset(
    group_name="sources",
    deps=["raw_telco_customers"],
    kinds={"duckdb", "polars", "matplotlib"},
    owners=[OWNER_DATA],
    pool="duckdb",
    code_version="1",
)
def telco_quality_report(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Telco assessment: churn overall and by every categorical field, tenure and charge
    distributions split by churn, missing values and IQR outliers."""
    with duckdb.connect(read_only=True) as con:
        frame = con.sql("SELECT * FROM raw.telco_customers").pl()
    by_category = eda.churn_by_category(frame)
    quality = eda.missing_and_outliers(frame, eda.TELCO_NUMERIC)
    overall = float(frame["churn"].mean() or 0.0)
    markdown = "\n\n".join(
        [
            f"## Telco data assessment\n\n{frame.height} customers, churn rate **{overall:.3f}**.",
            "### Churn rate by field\n\n" + md_table(by_category, max_rows=200),
            png_md(eda.churn_rate_bars(by_category), "churn rate by field"),
            "### Distributions by churn\n\n"
            + png_md(eda.distributions_by_churn(frame), "distributions"),
            "### Missing values and outliers\n\n" + md_table(quality, max_rows=50),
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(markdown),
            "report_path": dg.MetadataValue.path(_write_report("telco_quality", markdown)),
            "churn_rate": overall,
            "customers": frame.height,
            "iqr_outliers": int(quality["iqr_outliers"].fill_null(0).sum()),
            "nulls": int(quality["nulls"].sum()),
        }
    )


@dg.asset(
    group_name="sources",
    deps=["raw_retail_transactions"],
    kinds={"duckdb", "polars", "matplotlib"},
    owners=[OWNER_DATA],
    pool="duckdb",
    code_version="1",
)
def retail_quality_report(duckdb: DuckDBResource) -> dg.MaterializeResult:
    """Retail events profile: volume, customers and returns share per month, and lines with
    no customer (they cannot be attributed and are dropped by staging)."""
    with duckdb.connect(read_only=True) as con:
        events = con.sql(
            "SELECT invoice, quantity, unit_price, customer_id, invoice_ts FROM raw.retail_transactions"
        ).pl()
    profile = eda.retail_monthly_profile(events)
    no_customer = float(events["customer_id"].is_null().mean() or 0.0)
    returns = float((events["quantity"] < 0).mean() or 0.0)
    markdown = "\n\n".join(
        [
            f"## Retail events profile\n\n{events.height:,} invoice lines, "
            f"{events['customer_id'].n_unique() - 1:,} customers, returns share {returns:.3f}, "
            f"lines without customer {no_customer:.3f}.",
            png_md(eda.retail_monthly_plot(profile), "monthly profile"),
            "### Per month\n\n" + md_table(profile, max_rows=40),
        ]
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.md(markdown),
            "report_path": dg.MetadataValue.path(_write_report("retail_quality", markdown)),
            "lines": events.height,
            "returns_share": returns,
            "no_customer_share": no_customer,
            "months": profile.height,
            "monthly_profile": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({k: (str(v) if k == "month" else v) for k, v in r.items()})
                    for r in profile.to_dicts()
                ]
            ),
        }
    )
