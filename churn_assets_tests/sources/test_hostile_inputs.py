"""Hostile input through both doors: every class of bad file is refused or quarantined with a
message naming the file, the user's column and the row, and nothing of the last good table is
lost or counted twice.

Door 1 is run config (the ingest job with ``deliveries: [file]``); door 2 is the landing folder
(the landing sensor, then, for what only the load can judge, the ingest run and the failure
sensor). For each case: the outcome, the raw table's row count and content hash unchanged,
nothing downstream materialized, and for the landing door the other file of the same tick
still launched and the sensor's cursor intact.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn_assets.definitions import build_definitions
from churn_assets.defs.sources.landing import TAG_DELIVERY
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.resources import build_resources
from churn_assets.settings import ChurnSettings
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.sources import samples

pytestmark = pytest.mark.xdist_group("hostile")

ROW = 3  # the data row (1-based) every single-row corruption hits


# ---- bad files ---------------------------------------------------------------------------------


def _csv(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _set(line: str, header: list[str], column: str, value: str) -> str:
    fields = line.split(",")
    fields[header.index(column)] = value
    return ",".join(fields)


def _telco_edit(column: str, value: str) -> Callable[[Path, list[str]], Path]:
    def make(folder: Path, lines: list[str]) -> Path:
        header = lines[0].split(",")
        edited = [*lines[:ROW], _set(lines[ROW], header, column, value), *lines[ROW + 1 :]]
        return _csv(folder, f"telco_{column}_{value}.csv", edited)

    return make


def _telco_missing_column(folder: Path, lines: list[str]) -> Path:
    index = lines[0].split(",").index("Contract")
    cut = [",".join(f for i, f in enumerate(line.split(",")) if i != index) for line in lines]
    return _csv(folder, "telco_no_contract.csv", cut)


def _telco_duplicate(folder: Path, lines: list[str]) -> Path:
    return _csv(folder, "telco_duplicate.csv", [*lines, lines[ROW]])


def _telco_truncated(folder: Path, lines: list[str]) -> Path:
    return _csv(folder, "telco_truncated.csv", [*lines[:-1], lines[-1][:20]])


def _telco_header_only(folder: Path, lines: list[str]) -> Path:
    return _csv(folder, "telco_header_only.csv", lines[:1])


def _telco_absurd_charge(folder: Path, lines: list[str]) -> Path:
    """A monthly charge of 1e308 on a brand-new customer (tenure 0, nothing billed yet), where
    no ratio rule applies: only the bound on numbers stops it."""
    header = lines[0].split(",")
    row = lines[ROW]
    for column, value in (("tenure", "0"), ("TotalCharges", " "), ("MonthlyCharges", "1e308")):
        row = _set(row, header, column, value)
    return _csv(folder, "telco_absurd.csv", [*lines[:ROW], row, *lines[ROW + 1 :]])


def _telco_shrunk(folder: Path, lines: list[str]) -> Path:
    return _csv(folder, "telco_shrunk.csv", lines[:51])


def _parquet(folder: Path, name: str, frame: pl.DataFrame) -> Path:
    path = folder / name
    frame.write_parquet(path)
    return path


def _retail_edit(column: str, value: Any, name: str) -> Callable[[Path, pl.DataFrame], Path]:
    def make(folder: Path, frame: pl.DataFrame) -> Path:
        edited = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == ROW - 1)
            .then(pl.lit(value, dtype=frame.schema[column]))
            .otherwise(pl.col(column))
            .alias(column)
        )
        return _parquet(folder, name, edited)

    return make


def _retail_as_text(bad_ts: str | None) -> Callable[[Path, pl.DataFrame], Path]:
    """Every column as text (a spreadsheet export); optionally one unparseable timestamp."""

    def make(folder: Path, frame: pl.DataFrame) -> Path:
        text = frame.with_columns(pl.all().cast(pl.String))
        if bad_ts is not None:
            text = text.with_columns(
                pl.when(pl.int_range(pl.len()) == ROW - 1)
                .then(pl.lit(bad_ts))
                .otherwise(pl.col("invoice_ts"))
                .alias("invoice_ts")
            )
        return _parquet(folder, f"retail_text_{bad_ts is None}.parquet", text)

    return make


def _retail_missing_column(folder: Path, frame: pl.DataFrame) -> Path:
    return _parquet(folder, "retail_no_ts.parquet", frame.drop("invoice_ts"))


def _retail_undecodable(folder: Path, frame: pl.DataFrame) -> Path:
    """A text column holding bytes that are not UTF-8 (written as raw binary, typed as text)."""
    table = frame.to_arrow()
    country = [c.encode() for c in frame["country"].to_list()]
    country[ROW - 1] = b"K\xf6ln \xff\xfe"
    raw = pa.array(country, pa.binary())
    text = pa.StringArray.from_buffers(
        len(raw), raw.buffers()[1], raw.buffers()[2], raw.buffers()[0]
    )
    table = table.set_column(table.schema.get_field_index("country"), "country", text)
    path = folder / "retail_undecodable.parquet"
    pq.write_table(table, path)
    return path


def _retail_truncated(folder: Path, frame: pl.DataFrame) -> Path:
    whole = _parquet(folder, "retail_whole.parquet", frame)
    path = folder / "retail_truncated.parquet"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return path


def _retail_empty(folder: Path, frame: pl.DataFrame) -> Path:
    return _parquet(folder, "retail_empty.parquet", frame.head(0))


def _retail_future(folder: Path, frame: pl.DataFrame) -> Path:
    return _retail_edit("invoice_ts", datetime.now() + timedelta(days=3), "retail_future.parquet")(
        folder, frame
    )


def _retail_overlap(folder: Path, frame: pl.DataFrame) -> Path:
    """June again, with one line's quantity corrected: new events inside the known history."""
    june = pl.read_parquet(folder / "retail_archive.parquet").filter(
        pl.col("invoice_ts") >= datetime(2010, 6, 1)
    )
    return _retail_edit("quantity", 99, "retail_june_corrected.parquet")(folder, june)


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str
    make: Callable[[Path, Any], Path]
    says: tuple[str, ...]
    """Words the refusal must contain (the user's column, the check, the row)."""
    at_ingest: bool = False
    """Only the load can judge it (shrink guard, overlap): the sensor accepts, the run refuses."""


CASES = [
    Case("missing column", "telco", _telco_missing_column, ("'Contract'", "missing")),
    Case("wrong type", "telco", _telco_edit("tenure", "abc"), ("'tenure'", "type", f"[{ROW}]")),
    Case("duplicate id", "telco", _telco_duplicate, ("'customerID'", "unique")),
    Case("negative charge", "telco", _telco_edit("MonthlyCharges", "-5"), ("'MonthlyCharges'", f"[{ROW}]")),
    Case("NaN charge", "telco", _telco_edit("MonthlyCharges", "nan"), ("'MonthlyCharges'", f"[{ROW}]")),
    Case("absurd charge 1e308", "telco", _telco_absurd_charge, ("'MonthlyCharges'", "in_range", f"[{ROW}]")),
    Case("bad blank", "telco", _telco_edit("TotalCharges", " "), ("'TotalCharges'", "blank only when tenure = 0")),
    Case("truncated CSV", "telco", _telco_truncated, ("truncated",)),
    Case("empty snapshot", "telco", _telco_header_only, ("zero customers",)),
    Case("shrunk snapshot", "telco", _telco_shrunk, ("allow_shrink", "50"), at_ingest=True),
    Case("missing column", "retail", _retail_missing_column, ("'invoice_ts'", "missing")),
    Case("unparseable timestamp", "retail", _retail_as_text("31/02/2010 25:61"), ("'invoice_ts'", f"[{ROW}]", "31/02/2010")),
    Case("future timestamp", "retail", _retail_future, ("'invoice_ts'", "in_range", f"[{ROW}]")),
    Case("negative price", "retail", _retail_edit("unit_price", -1.0, "retail_negative.parquet"), ("unit_price_non_negative", f"[{ROW}]")),
    Case("absurd price 1e308", "retail", _retail_edit("unit_price", 1e308, "retail_absurd.parquet"), ("'unit_price'", "finite", f"[{ROW}]")),
    Case("NaN price", "retail", _retail_edit("unit_price", float("nan"), "retail_nan.parquet"), ("'unit_price'", "finite", f"[{ROW}]")),
    Case("missing product", "retail", _retail_edit("stock_code", None, "retail_no_product.parquet"), ("'stock_code'", "not null", f"[{ROW}]")),
    Case("undecodable text", "retail", _retail_undecodable, ("unreadable parquet", "'country'")),
    Case("truncated parquet", "retail", _retail_truncated, ("unreadable parquet",)),
    Case("empty delivery", "retail", _retail_empty, ("no data rows",)),
    Case("overlapping history", "retail", _retail_overlap, ("overlaps the loaded history", "2010-06"), at_ingest=True),
]  # fmt: skip


# ---- the environment: the last good state of both datasets -------------------------------------


@dataclass
class Env:
    settings: ChurnSettings
    specs: dict[str, DatasetSpec]
    defs: dict[str, dg.Definitions]
    instance: dg.DagsterInstance
    good: dict[str, Any]
    """A good delivery per dataset (the retail next month; the telco sample's lines)."""
    folder: Path

    def resources(self) -> dict[str, Any]:
        return build_resources(self.settings)

    def raw_asset(self, dataset: str) -> str:
        return self.specs[dataset].key(f"raw_{self.specs[dataset].raw_table}")

    def ingest(
        self, dataset: str, deliveries: list[str], tags: dict[str, str] | None = None
    ) -> dg.ExecuteInProcessResult:
        """The raw table and its quality report (what the contract guards), as the ingest job's
        first steps run them."""
        spec = self.specs[dataset]
        job = dg.define_asset_job(
            f"{dataset}_load", selection=[self.raw_asset(dataset), spec.key("quality_report")]
        )
        defs = dg.Definitions.merge(self.defs[dataset], dg.Definitions(jobs=[job]))
        return defs.resolve_job_def(job.name).execute_in_process(
            instance=self.instance,
            run_config={"ops": {self.raw_asset(dataset): {"config": {"deliveries": deliveries}}}},
            tags=tags,
            raise_on_error=False,
        )

    def fingerprint(self, dataset: str) -> tuple[int, int]:
        spec = self.specs[dataset]
        with self.resources()["duckdb"].connect(read_only=True) as con:
            row = con.execute(
                f"SELECT count(*), sum(hash(t)) FROM {spec.db_schema('raw')}.{spec.raw_table} AS t"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def tick(self, dataset: str, cursor: str | None) -> dg.SensorResult:
        sensor = self.defs[dataset].get_sensor_def(f"{dataset}_landing_sensor")
        context = dg.build_sensor_context(
            instance=self.instance, cursor=cursor, resources=self.resources()
        )
        result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    folder = tmp_path_factory.mktemp("hostile")
    settings = settings_for(folder / "home")
    retail, delivery = samples.retail_sample(folder)
    telco, lines = samples.telco_sample(folder)
    specs = {"retail": retail, "telco": telco}
    with dg.instance_for_test() as instance:
        environment = Env(
            settings,
            specs,
            {name: build_definitions(settings, [spec]) for name, spec in specs.items()},
            instance,
            {"retail": delivery, "telco": lines},
            folder,
        )
        for dataset in specs:
            assert environment.ingest(dataset, []).success, dataset
        yield environment


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failures, "the load should have failed"
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None, data.error
    return data.user_failure_data.description or ""


def _materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {
        e.asset_key.to_user_string()
        for e in result.get_asset_materialization_events()
        if e.asset_key
    }


@pytest.mark.parametrize("case", CASES, ids=[f"{c.dataset}:{c.name}" for c in CASES])
def test_run_config_door(env: Env, case: Case, tmp_path: Path) -> None:
    before = env.fingerprint(case.dataset)
    bad = case.make(
        env.folder if case.name == "overlapping history" else tmp_path, env.good[case.dataset]
    )
    result = env.ingest(case.dataset, [str(bad)])
    assert not result.success
    message = _failure(result)
    for word in (bad.name, *case.says):
        assert word in message, f"{word!r} not in: {message}"
    check = result.get_asset_check_evaluations()
    assert len(check) == 1 and not check[0].passed and check[0].check_name == "contract"
    assert _materialized(result) == set()  # neither the table nor the report downstream
    assert env.fingerprint(case.dataset) == before
    assert bad.exists()  # a user's own file is left where it is


@pytest.mark.parametrize("case", CASES, ids=[f"{c.dataset}:{c.name}" for c in CASES])
def test_landing_door(env: Env, case: Case) -> None:
    dataset = case.dataset
    folders = env.settings.landing(dataset).ensure()
    before = env.fingerprint(dataset)
    cursor = env.tick(dataset, None).cursor
    bad = case.make(
        folders.incoming if case.name != "overlapping history" else env.folder, env.good[dataset]
    )
    if bad.parent != folders.incoming:
        bad = bad.rename(folders.incoming / bad.name)
    result = env.tick(dataset, cursor)
    assert json.loads(result.cursor or "{}") == json.loads(cursor or "{}")
    requests = [r for r in result.run_requests or [] if r.tags.get(TAG_DELIVERY)]
    if not case.at_ingest:
        assert requests == []
    else:
        # valid to the contract: only the load can refuse it; its run fails, the failure sensor
        # quarantines the file with the run's error
        (request,) = requests
        run = env.ingest(dataset, [request.tags[TAG_DELIVERY]], tags=dict(request.tags))
        assert not run.success
        sensor = env.defs[dataset].get_sensor_def(f"{dataset}_ingest_failure_sensor")
        failure = next(e for e in run.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        sensor(
            dg.build_run_status_sensor_context(
                sensor_name=sensor.name,
                dagster_instance=env.instance,
                dagster_run=run.dagster_run,
                dagster_event=failure,
                resources=env.resources(),
            ).for_run_failure()
        )
    quarantined = folders.quarantine / bad.name
    assert quarantined.exists() and not bad.exists()
    reason = (folders.quarantine / f"{bad.name}.reason.txt").read_text()
    assert reason.startswith(str(quarantined))  # names where the file now is
    for word in (bad.name, *case.says):
        assert word in reason, f"{word!r} not in: {reason}"
    assert env.fingerprint(dataset) == before
    assert list(folders.pending.glob("*.parquet")) + list(folders.pending.glob("*.csv")) == []


def test_one_bad_file_never_blocks_a_good_one_in_the_same_tick(env: Env) -> None:
    folders = env.settings.landing("retail").ensure()
    cursor = env.tick("retail", None).cursor
    bad = _retail_truncated(folders.incoming, env.good["retail"])
    good = folders.incoming / "retail_2010-07.parquet"
    env.good["retail"].write_parquet(good)
    result = env.tick("retail", cursor)
    (request,) = [r for r in result.run_requests or [] if r.tags.get(TAG_DELIVERY)]
    assert Path(request.tags[TAG_DELIVERY]).name == good.name
    assert (folders.quarantine / bad.name).exists()
    # a tick that lost its requests (a crash) is recovered: the same key is requested again
    again = env.tick("retail", result.cursor)
    assert [r.run_key for r in again.run_requests or []] == [request.run_key]
    before = env.fingerprint("retail")
    run = env.ingest("retail", [request.tags[TAG_DELIVERY]], tags=dict(request.tags))
    assert run.success
    assert env.fingerprint("retail")[0] == before[0] + env.good["retail"].height
    assert (folders.accepted / good.name).exists() and not list(folders.pending.glob("*.parquet"))
