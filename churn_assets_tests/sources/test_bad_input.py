"""Every class of bad input fails loudly, names the problem, and loses nothing.

Corrupted fixtures are cut from the real bundled files, so the good path is the real contract.
After each failed load the last good table must have the same row count and checksum.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from churn_assets.defs.sources.assets import raw_retail_transactions, raw_telco_customers

from churn_assets.resources import DuckDBResource
from churn_assets.settings import Settings

TELCO_ROWS = 200
RETAIL_ROWS = 2_000


def _fingerprint(db: DuckDBResource, table: str) -> tuple[int, int]:
    with db.connect(read_only=True) as con:
        row = con.execute(f"SELECT count(*), sum(hash(t)) FROM raw.{table} AS t").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _materialize(
    asset: dg.AssetsDefinition, db: DuckDBResource, config: dict
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        resources={"duckdb": db},
        run_config={"ops": {asset.op.name: {"config": config}}},
        raise_on_error=False,
    )


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "the load should have failed"
    return failures[0].step_failure_data.error.message


def _failed_check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 1 and not checks[0].passed
    return checks[0]


# ---- Telco: CSV corruptions ------------------------------------------------------------------


def _telco_lines(settings: Settings) -> list[str]:
    return settings.telco_csv.read_text().splitlines()[: TELCO_ROWS + 1]


def _set_field(line: str, index: int, value: str) -> str:
    fields = line.split(",")
    fields[index] = value
    return ",".join(fields)


def _missing_column(lines: list[str]) -> str:
    return "\n".join(",".join(line.split(",")[:-2] + line.split(",")[-1:]) for line in lines)


def _wrong_type(lines: list[str]) -> str:
    lines[7] = _set_field(lines[7], 5, "twelve")
    return "\n".join(lines)


def _duplicate_id(lines: list[str]) -> str:
    lines[9] = lines[3]
    return "\n".join(lines)


def _negative_charges(lines: list[str]) -> str:
    lines[11] = _set_field(lines[11], 18, "-20.5")
    return "\n".join(lines)


def _truncated(lines: list[str]) -> str:
    text = "\n".join(lines)
    return text[: len(text) - len(lines[-1]) // 2]


TELCO_CASES: dict[str, tuple[Callable[[list[str]], str], list[str]]] = {
    "missing column": (_missing_column, ["missing column", "TotalCharges"]),
    "wrong type": (_wrong_type, ["'tenure'", "type Int32", "data rows [7]", "twelve"]),
    "duplicate customer id": (_duplicate_id, ["'customer_id'", "uniqueness", "data rows [3, 9]"]),
    "negative charges": (
        _negative_charges,
        ["'monthly_charges'", "greater_than_or_equal_to(0)", "data rows [11"],
    ),
    "truncated file": (_truncated, ["truncated", f"data rows [{TELCO_ROWS}]"]),
}


@pytest.fixture
def good_telco(churn_home: Settings, tmp_path: Path) -> tuple[DuckDBResource, tuple[int, int]]:
    db = DuckDBResource(path=str(churn_home.duckdb_path))
    good = tmp_path / "good.csv"
    good.write_text("\n".join(_telco_lines(churn_home)) + "\n")
    assert _materialize(raw_telco_customers, db, {"path": str(good)}).success
    return db, _fingerprint(db, "telco_customers")


@pytest.mark.parametrize("case", list(TELCO_CASES))
def test_bad_telco_file_is_refused_and_last_good_table_survives(
    case: str,
    good_telco: tuple[DuckDBResource, tuple[int, int]],
    churn_home: Settings,
    tmp_path: Path,
) -> None:
    db, before = good_telco
    corrupt, expected = TELCO_CASES[case]
    bad = tmp_path / f"{case.replace(' ', '_')}.csv"
    bad.write_text(corrupt(_telco_lines(churn_home)))

    result = _materialize(raw_telco_customers, db, {"path": str(bad)})

    assert not result.success
    message = _failure_message(result)
    assert str(bad) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert _failed_check(result).check_name == "telco_contract"
    assert before[0] == TELCO_ROWS
    assert _fingerprint(db, "telco_customers") == before


# ---- Retail: parquet corruptions -------------------------------------------------------------


def _retail_sample(settings: Settings) -> pl.DataFrame:
    return pl.read_parquet(settings.retail_parquet, n_rows=RETAIL_ROWS)


def _bad_timestamp(frame: pl.DataFrame) -> pl.DataFrame:
    text = frame.with_columns(pl.col("invoice_ts").dt.strftime("%Y-%m-%d %H:%M:%S"))
    return text.with_columns(
        invoice_ts=pl.when(pl.int_range(pl.len()) == 41)
        .then(pl.lit("31/02/2010 25:61"))
        .otherwise(pl.col("invoice_ts"))
    )


def _future_timestamp(frame: pl.DataFrame) -> pl.DataFrame:
    future = datetime.now() + timedelta(days=30)
    return frame.with_columns(
        invoice_ts=pl.when(pl.int_range(pl.len()) == 99)
        .then(pl.lit(future))
        .otherwise(pl.col("invoice_ts"))
    )


def _negative_price(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        unit_price=pl.when(pl.int_range(pl.len()) == 9).then(-1.25).otherwise(pl.col("unit_price"))
    )


def _retail_wrong_type(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        quantity=pl.when(pl.int_range(pl.len()) == 4)
        .then(pl.lit("a dozen"))
        .otherwise(pl.col("quantity").cast(pl.String))
    )


RETAIL_CASES: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], list[str]]] = {
    "missing column": (lambda f: f.drop("customer_id"), ["missing column", "customer_id"]),
    "unparseable timestamp": (
        _bad_timestamp,
        ["'invoice_ts'", "data rows [42]", "31/02/2010 25:61"],
    ),
    "future timestamp": (_future_timestamp, ["'invoice_ts'", "in_range", "data rows [100]"]),
    "negative price": (_negative_price, ["unit_price >= 0", "data rows [10]"]),
    "wrong type": (_retail_wrong_type, ["'quantity'", "type Int32", "data rows [5]", "a dozen"]),
}


@pytest.fixture
def good_retail(
    churn_home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[DuckDBResource, tuple[int, int]]:
    """A small events history stands in for the bundled one; the asset then reads it."""
    sample = tmp_path / "raw" / "online_retail_ii" / "online_retail_ii_events.parquet"
    sample.parent.mkdir(parents=True)
    _retail_sample(churn_home).write_parquet(sample)
    (tmp_path / "raw" / "telco").mkdir()
    monkeypatch.setenv("CHURN_RAW_DIR", str(tmp_path / "raw"))
    from churn_assets.settings import get_settings

    get_settings.cache_clear()
    db = DuckDBResource(path=str(churn_home.duckdb_path))
    assert _materialize(raw_retail_transactions, db, {}).success
    return db, _fingerprint(db, "retail_transactions")


@pytest.mark.parametrize("case", list(RETAIL_CASES))
def test_bad_retail_file_is_refused_and_last_good_table_survives(
    case: str,
    good_retail: tuple[DuckDBResource, tuple[int, int]],
    churn_home: Settings,
    tmp_path: Path,
) -> None:
    db, before = good_retail
    corrupt, expected = RETAIL_CASES[case]
    bad = tmp_path / f"{case.replace(' ', '_')}.parquet"
    corrupt(_retail_sample(churn_home)).write_parquet(bad)

    result = _materialize(raw_retail_transactions, db, {"extra_paths": [str(bad)]})

    assert not result.success
    message = _failure_message(result)
    assert str(bad) in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert _failed_check(result).check_name == "retail_contract"
    assert before[0] == RETAIL_ROWS
    assert _fingerprint(db, "retail_transactions") == before


def test_truncated_parquet_is_refused(
    good_retail: tuple[DuckDBResource, tuple[int, int]], churn_home: Settings, tmp_path: Path
) -> None:
    db, before = good_retail
    whole = tmp_path / "whole.parquet"
    _retail_sample(churn_home).write_parquet(whole)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    result = _materialize(raw_retail_transactions, db, {"extra_paths": [str(cut)]})

    message = _failure_message(result)
    assert str(cut) in message and "unreadable parquet" in message
    assert _fingerprint(db, "retail_transactions") == before
