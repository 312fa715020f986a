"""Data contracts for the raw tables: typed readers plus pandera schemas on Polars frames.

Reading and validating are one step, because a file must be proven good *before* it may
replace the current table. Every failure raises :class:`ContractViolation`, whose message names
the file, the column and the first offending rows (1-based data rows, header excluded), so a
user can open the file and find the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandera.polars as pa
import polars as pl

MAX_REPORTED_ROWS = 5

YES_NO = ["Yes", "No"]
YES_NO_INTERNET = ["Yes", "No", "No internet service"]

# Measured on the real file: TotalCharges / (tenure * MonthlyCharges) ranges from 0.689 to
# 1.573 over the 7,032 customers with tenure > 0 (median 1.000, p99.9 1.313): prices change
# during a customer's life. The bounds leave ~10% headroom beyond the observed extremes.
TOTAL_CHARGES_RATIO_BOUNDS = (0.6, 1.75)

# Online Retail II starts on 2009-12-01; nothing may be stamped after the moment of loading.
RETAIL_EPOCH = datetime(2009, 12, 1)

TELCO_COLUMNS: dict[str, str] = {
    "customerID": "customer_id",
    "gender": "gender",
    "SeniorCitizen": "senior_citizen",
    "Partner": "partner",
    "Dependents": "dependents",
    "tenure": "tenure",
    "PhoneService": "phone_service",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract",
    "PaperlessBilling": "paperless_billing",
    "PaymentMethod": "payment_method",
    "MonthlyCharges": "monthly_charges",
    "TotalCharges": "total_charges",
    "Churn": "churn",
}

TELCO_CATEGORIES: dict[str, list[str]] = {
    "gender": ["Female", "Male"],
    "partner": YES_NO,
    "dependents": YES_NO,
    "phone_service": YES_NO,
    "multiple_lines": ["Yes", "No", "No phone service"],
    "internet_service": ["DSL", "Fiber optic", "No"],
    "online_security": YES_NO_INTERNET,
    "online_backup": YES_NO_INTERNET,
    "device_protection": YES_NO_INTERNET,
    "tech_support": YES_NO_INTERNET,
    "streaming_tv": YES_NO_INTERNET,
    "streaming_movies": YES_NO_INTERNET,
    "contract": ["Month-to-month", "One year", "Two year"],
    "paperless_billing": YES_NO,
    "payment_method": [
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    ],
}

TELCO_TYPES: dict[str, pl.DataType] = {
    "senior_citizen": pl.Int32(),
    "tenure": pl.Int32(),
    "monthly_charges": pl.Float64(),
    "total_charges": pl.Float64(),
}

RETAIL_COLUMNS: dict[str, pl.DataType] = {
    "invoice": pl.String(),
    "stock_code": pl.String(),
    "description": pl.String(),
    "quantity": pl.Int32(),
    "invoice_ts": pl.Datetime("us"),
    "unit_price": pl.Float64(),
    "customer_id": pl.Int32(),
    "country": pl.String(),
}


class ContractViolation(ValueError):
    """A file broke its contract; the message is written for the person who supplied it."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


@dataclass(frozen=True)
class Problem:
    column: str
    check: str
    rows: list[int]
    values: list[object]

    def describe(self) -> str:
        shown = ", ".join(str(r) for r in self.rows[:MAX_REPORTED_ROWS])
        more = (
            f" (+{len(self.rows) - MAX_REPORTED_ROWS} more)"
            if len(self.rows) > MAX_REPORTED_ROWS
            else ""
        )
        values = ", ".join(_short(v) for v in self.values[:MAX_REPORTED_ROWS])
        found = f": values [{values}]" if values else ""
        return f"column '{self.column}' failed {self.check} at data rows [{shown}]{more}{found}"


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rows(mask: pl.Series) -> list[int]:
    return [i + 1 for i in mask.arg_true().to_list()]


def _casting_problems(raw: pl.DataFrame, typed: pl.DataFrame, columns: list[str]) -> list[Problem]:
    """Values present in the file that did not parse as the declared type."""
    problems = []
    for column in columns:
        bad = raw[column].is_not_null() & typed[column].is_null()
        if bad.any():
            problems.append(
                Problem(
                    column,
                    f"type {typed[column].dtype}",
                    _rows(bad),
                    raw[column].filter(bad).to_list(),
                )
            )
    return problems


def _schema_problems(schema: pa.DataFrameSchema, frame: pl.DataFrame) -> list[Problem]:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        problems = []
        for (column, check), group in cases.group_by(["column", "check"], maintain_order=True):
            rows = [int(i) + 1 for i in group["index"].to_list() if i is not None]
            problems.append(Problem(str(column), str(check), rows, group["failure_case"].to_list()))
        return problems
    return []


def _truncated_rows(raw: pl.DataFrame) -> list[Problem]:
    """Rows whose trailing fields are all missing: a cut-off file or a short line."""
    last = raw.columns[-1]
    short = raw.select(pl.sum_horizontal(pl.all().is_null()) > 2).to_series() & raw[last].is_null()
    if not short.any():
        return []
    first_missing = next(c for c in raw.columns if raw.filter(short)[c].is_null().all())
    return [
        Problem(first_missing, "complete row (file truncated or line cut short)", _rows(short), [])
    ]


def _require_columns(source: str, present: list[str], required: list[str]) -> None:
    missing = [c for c in required if c not in present]
    if missing:
        raise ContractViolation(source, [f"missing column(s) {missing}; found {present}"])


def _raise_if(source: str, problems: list[Problem]) -> None:
    if problems:
        raise ContractViolation(source, [p.describe() for p in problems])


TELCO_SCHEMA = pa.DataFrameSchema(
    {
        "customer_id": pa.Column(str, pa.Check.str_matches(r"^\d{4}-[A-Z]{5}$"), unique=True),
        "senior_citizen": pa.Column(pl.Int32, pa.Check.isin([0, 1])),
        "tenure": pa.Column(pl.Int32, pa.Check.in_range(0, 72)),
        "monthly_charges": pa.Column(pl.Float64, pa.Check.ge(0)),
        "total_charges": pa.Column(pl.Float64, pa.Check.ge(0)),
        "total_charges_imputed": pa.Column(pl.Boolean),
        "churn": pa.Column(pl.Boolean),
        **{c: pa.Column(str, pa.Check.isin(v)) for c, v in TELCO_CATEGORIES.items()},
    },
    checks=[
        pa.Check(
            lambda data: data.lazyframe.select(
                (pl.col("tenure") == 0)
                | (
                    pl.col("total_charges") / (pl.col("tenure") * pl.col("monthly_charges"))
                ).is_between(*TOTAL_CHARGES_RATIO_BOUNDS)
            ),
            name="total_charges_consistent_with_tenure_x_monthly",
            error=f"TotalCharges / (tenure * MonthlyCharges) within {TOTAL_CHARGES_RATIO_BOUNDS}",
        )
    ],
    strict=True,
    name="telco_customers",
)


def read_telco_csv(path: Path) -> pl.DataFrame:
    """Read and validate the Telco CSV into the typed ``raw.telco_customers`` shape.

    Rule for blank ``TotalCharges``: a blank is only legal for a brand-new customer
    (tenure 0, nothing billed yet); it becomes 0.0 and ``total_charges_imputed`` is set, so the
    fill is visible downstream. A blank with tenure > 0 is a contract violation.
    """
    source = str(path)
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ContractViolation(
            source, [f"unreadable CSV ({exc.__class__.__name__}: {exc})"]
        ) from exc
    _require_columns(source, raw.columns, list(TELCO_COLUMNS))
    raw = raw.select(list(TELCO_COLUMNS)).rename(TELCO_COLUMNS)
    raw = raw.with_columns(pl.all().str.strip_chars().replace("", None))

    problems = _truncated_rows(raw)
    if problems:
        raise ContractViolation(source, [p.describe() for p in problems])
    empty = [c for c in raw.columns if c != "total_charges" and raw[c].is_null().any()]
    problems = [Problem(c, "not null", _rows(raw[c].is_null()), []) for c in empty]
    blank_total = raw["total_charges"].is_null()
    typed = raw.with_columns(
        pl.col(c).cast(t, strict=False) for c, t in TELCO_TYPES.items()
    ).with_columns(
        total_charges_imputed=blank_total,
        churn=pl.col("churn").replace_strict({"Yes": True, "No": False}, default=None),
    )
    problems += _casting_problems(raw, typed, list(TELCO_TYPES))
    bad_churn = raw["churn"].is_not_null() & typed["churn"].is_null()
    if bad_churn.any():
        problems.append(
            Problem(
                "churn",
                "isin(['Yes', 'No'])",
                _rows(bad_churn),
                raw["churn"].filter(bad_churn).to_list(),
            )
        )
    bad_blank = blank_total & (typed["tenure"] != 0).fill_null(True)
    if bad_blank.any():
        problems.append(
            Problem("total_charges", "blank only when tenure = 0", _rows(bad_blank), [])
        )
    _raise_if(source, problems)

    typed = typed.with_columns(pl.col("total_charges").fill_null(0.0))
    _raise_if(source, _schema_problems(TELCO_SCHEMA, typed))
    return typed


def retail_schema(now: datetime) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "invoice": pa.Column(str, pa.Check.str_matches(r"^[CA]?\d{6}$")),
            "stock_code": pa.Column(str),
            "description": pa.Column(str, nullable=True),
            "quantity": pa.Column(pl.Int32, pa.Check.ne(0)),
            "invoice_ts": pa.Column(pl.Datetime("us"), pa.Check.in_range(RETAIL_EPOCH, now)),
            "unit_price": pa.Column(pl.Float64),
            "customer_id": pa.Column(pl.Int32, pa.Check.gt(0), nullable=True),
            "country": pa.Column(str),
        },
        checks=[
            pa.Check(
                lambda data: data.lazyframe.select(
                    (pl.col("unit_price") >= 0) | pl.col("invoice").str.starts_with("A")
                ),
                name="unit_price_non_negative",
                error="unit_price >= 0 except adjust-bad-debt invoices ('A…')",
            )
        ],
        strict="filter",
        name="retail_transactions",
    )


def read_retail_parquet(path: Path, now: datetime | None = None) -> pl.DataFrame:
    """Read and validate one Online Retail II events file into the typed raw shape."""
    source = str(path)
    try:
        raw = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ContractViolation(
            source, [f"unreadable parquet ({exc.__class__.__name__}: {exc})"]
        ) from exc
    _require_columns(source, raw.columns, list(RETAIL_COLUMNS))
    raw = raw.select(list(RETAIL_COLUMNS))
    typed = raw.with_columns(_cast(c, raw[c].dtype, t) for c, t in RETAIL_COLUMNS.items())
    problems = _casting_problems(raw, typed, list(RETAIL_COLUMNS))
    nulls = [c for c in RETAIL_COLUMNS if c not in ("description", "customer_id")]
    problems += [
        Problem(c, "not null", _rows(raw[c].is_null()), []) for c in nulls if raw[c].is_null().any()
    ]
    _raise_if(source, problems)
    _raise_if(source, _schema_problems(retail_schema(now or datetime.now()), typed))
    return typed


def _cast(column: str, current: pl.DataType, target: pl.DataType) -> pl.Expr:
    if current == pl.String and target.is_temporal():
        return pl.col(column).str.to_datetime(strict=False, time_unit="us")
    return pl.col(column).cast(target, strict=False)


def validate_retail_file(path: Path) -> None:
    """Raise :class:`ContractViolation` if ``path`` may not be ingested."""
    read_retail_parquet(path)
