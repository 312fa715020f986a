"""The batch side of the stream parity runs, built from the bundled data by the real code.

:func:`build_batch` loads the retail archive through its contract into ``retail_raw.events``
and runs the project's dbt models on it (the feature store ``make run`` builds, for a few
observation dates); :func:`register_champion_from_batch` trains a small XGBoost on the matured
months of that feature table (``training_query``, as the training-set asset does) and makes it
the registry's champion; :func:`batch_scores` scores a month as the batch scores asset does
(``score_frame``). :class:`FaultyWorkers` runs worker processes and SIGKILLs them mid-stream.
The parity test and ``benchmarks/stream.py`` share all of it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import redis

from churn_assets.defs.features.project import dbt_resource
from churn_assets.defs.features.training_sets import training_query
from churn_assets.defs.monitoring.scoring import score_frame
from churn_assets.lib import registry_models as registry
from churn_assets.lib.contracts import read_file
from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.duckdb_io import replace_tables
from churn_assets.lib.features_dbt import dbt_vars, vars_arg
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.online_store import Mismatch
from churn_assets.lib.stream import state as store
from churn_assets.lib.stream.compare import compare_features
from churn_assets.lib.stream.events import encode
from churn_assets.lib.stream.tiles import Knobs, derive_frame
from churn_assets.lib.training_set import TrainingSet, unsupported_features
from churn_assets.resources import MLflowResource
from churn_assets.streaming.bootstrap import bootstrap
from churn_assets.streaming.producer import publish
from churn_assets_tests.serving.fixtures import XGB_PARAMS, register_champion
from churn_assets_tests.training.fixtures import mlflow_template

OBSERVATION = (date(2011, 5, 1), date(2011, 12, 1))
"""Observation dates of the batch build: matured labels up to 2011-09 to train on, and the
month the parity is checked at."""
PARITY_DATE = date(2011, 12, 1)
SCORE_TOLERANCE = 1e-6
BATCH_SECONDS = 0.04
"""About how long a worker takes over one batch of 500 real events on this machine."""


def build_batch(spec: DatasetSpec, root: Path) -> Path:
    """``<root>/churn.duckdb`` with the real raw events and the dbt feature tables."""
    path = root / "churn.duckdb"
    frame = read_file(spec, spec.source_files()[0])
    with duckdb.connect(str(path)) as con:
        replace_tables(con, spec.db_schema("raw"), {spec.raw_table: frame})
    variables = dbt_vars(spec, str(path), OBSERVATION)
    dbt_resource(spec.name).cli(
        ["run", "--quiet", *vars_arg(variables)], target_path=root / "dbt_target"
    ).wait()
    return path


def register_champion_from_batch(
    spec: DatasetSpec, duckdb_path: Path, root: Path, template_dir: Path
) -> tuple[MLflowResource, str]:
    """A small XGBoost on the matured months, registered as ``churn-<ds>@champion`` (the
    MLflow store starts as a copy of the migrated template kept in ``template_dir``: creating
    one costs seconds)."""
    shutil.copyfile(mlflow_template(template_dir), root / "mlflow.db")
    resource = MLflowResource(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}", artifact_root=str(root / "artifacts")
    )
    resource.configure()
    features = feature_set(spec)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        frame = con.sql(training_query(spec, features)).pl()
    excluded = unsupported_features(frame, features.names)
    path = root / "training_set"
    path.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path / "training_set.parquet")
    ts = TrainingSet(
        spec.name,
        "parity",
        path,
        tuple(n for n in features.numeric if n not in excluded),
        tuple(n for n in features.categorical if n not in excluded),
        excluded_features=excluded,
    )
    version, _ = register_champion(resource, spec.name, ts, XGB_PARAMS)
    return resource, version


def batch_features(spec: DatasetSpec, duckdb_path: Path, day: date) -> pl.DataFrame:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        return con.sql(
            f"SELECT * FROM {spec.db_schema('features')}.fct_features WHERE observation_date = ?",
            params=[day],
        ).pl()


def batch_scores(spec: DatasetSpec, features: pl.DataFrame, day: date) -> pl.DataFrame:
    """The champion's batch scores of ``features`` (the scores asset's own function)."""
    champion = registry.load_champion(spec.name)
    assert champion is not None
    return score_frame(champion, features, day)


def latest_scores(client: Any, dataset: str) -> dict[str, dict[str, str]]:
    """The newest score entry of every customer in the scores stream."""
    out: dict[str, dict[str, str]] = {}
    start = "-"
    while True:
        chunk = client.xrange(store.scores_key(dataset), min=start, max="+", count=5000)
        for _, fields in chunk:
            entry = {k.decode(): v.decode() for k, v in fields.items()}
            out[entry["customer_id"]] = entry
        if len(chunk) < 5000:
            return out
        start = "(" + chunk[-1][0].decode()


def group_backlog(client: Any, dataset: str) -> int:
    """Entries not yet acknowledged: never delivered (lag) plus pending."""
    for group in client.xinfo_groups(store.events_key(dataset)):
        if group["name"].decode() == store.GROUP:
            return int(group["lag"] or 0) + int(group["pending"])
    return client.xlen(store.events_key(dataset))


def busy_consumers(client: Any, dataset: str) -> list[str]:
    """Consumers holding delivered entries they have not acknowledged yet."""
    try:
        consumers = client.xinfo_consumers(store.events_key(dataset), store.GROUP)
    except redis.ResponseError:  # no group yet: no worker has started
        return []
    return [c["name"].decode() for c in consumers if c["pending"]]


@dataclass
class FaultyWorkers:
    """Worker processes (``python -m churn_assets.streaming``) that get SIGKILLed mid-stream.

    A kill restarts the worker under the same consumer name (it re-reads its own pending
    entries) or, every other time, under a new one, so that the dead consumer's entries are
    only recovered by another consumer's XAUTOCLAIM.
    """

    dataset: str
    env: dict[str, str]
    log_dir: Path
    consumers: int = 1
    seed: int = 0
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    kills: int = 0
    _names: int = 0

    def start(self, name: str | None = None) -> str:
        if name is None:
            self._names += 1
            name = f"worker-{self._names}"
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "churn_assets.streaming", "--dataset", self.dataset,
             "--consumer", name, "--exit-when-idle", "600"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        return name

    def start_all(self) -> None:
        for _ in range(self.consumers):
            self.start()

    def kill_at_random(
        self,
        backlog: Callable[[], int],
        busy: Callable[[], list[str]],
        kills: int,
        timeout_seconds: float = 600,
    ) -> None:
        """SIGKILL a worker ``kills`` times, each after the backlog shrank by a random amount,
        and always one that holds delivered, unacknowledged entries (``busy``), a random part of
        a batch's processing time after it was seen so: every kill lands inside a batch,
        before, during or after its apply and before its acknowledgement. Then restart it."""
        rng = random.Random(self.seed)
        deadline = time.monotonic() + timeout_seconds
        for kill in range(kills):
            remaining = backlog()
            target = remaining - rng.randint(1, max(1, remaining // (kills - kill + 1)))
            while backlog() > max(target, 0) or not (
                victims := sorted(set(busy()) & set(self.processes))
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError("the workers made no progress")
                time.sleep(0.001)
            name = rng.choice(victims)
            time.sleep(rng.uniform(0, BATCH_SECONDS))
            self.processes.pop(name).send_signal(signal.SIGKILL)
            self.kills += 1
            self.start(name if kill % 2 == 0 else None)

    def wait_drained(self, backlog: Callable[[], int], timeout_seconds: float = 600) -> None:
        deadline = time.monotonic() + timeout_seconds
        while backlog() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{backlog()} entries still unprocessed")
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()


@dataclass(frozen=True)
class ParityReport:
    """Online against batch at the parity date, after a stream with faults."""

    events: int
    counted: int
    applied: int
    redelivered: int
    kills: int
    customers: int
    feature_mismatches: list[Mismatch]
    scores: int
    score_mismatches: list[str]
    max_score_difference: float
    stream_seconds: float

    @property
    def lost(self) -> int:
        return self.counted - self.applied

    @property
    def ok(self) -> bool:
        return not self.feature_mismatches and not self.score_mismatches and self.lost == 0

    def lines(self) -> list[str]:
        return [
            f"events published            {self.events:>9,}",
            f"events counted (staged)     {self.counted:>9,}",
            f"events applied (exactly)    {self.applied:>9,}   lost {self.lost}",
            f"redeliveries found applied  {self.redelivered:>9,}   (not counted again)",
            f"worker SIGKILLs             {self.kills:>9,}",
            f"customers compared          {self.customers:>9,}   feature mismatches "
            f"{len(self.feature_mismatches)}",
            f"scores compared             {self.scores:>9,}   score mismatches "
            f"{len(self.score_mismatches)} (max |diff| {self.max_score_difference:.2e})",
            f"stream wall time            {self.stream_seconds:>9.1f} s",
        ]


def stream_with_faults(
    spec: DatasetSpec,
    duckdb_path: Path,
    client: Any,
    env: dict[str, str],
    log_dir: Path,
    *,
    start: date,
    kills: int,
    consumers: int = 1,
    seed: int = 0,
) -> ParityReport:
    """Bootstrap the online state at ``start`` from the batch, stream the real events from
    ``start`` to the parity date through worker processes SIGKILLed ``kills`` times, then
    compare every customer's features and latest score with the batch at the parity date."""
    bootstrap(client, spec, str(duckdb_path), start)
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        raw = con.sql(
            f"SELECT * FROM {spec.db_schema('raw')}.{spec.raw_table} "
            "WHERE event_ts >= ? AND event_ts < ? ORDER BY event_ts",
            params=[start, PARITY_DATE],
        ).pl()
        counted = con.sql(
            f"SELECT count(*) FROM {spec.db_schema('staging')}.stg_events "
            "WHERE event_ts >= ? AND event_ts < ?",
            params=[start, PARITY_DATE],
        ).fetchall()[0][0]
    began = time.monotonic()
    published = publish(client, spec.name, (encode(row) for row in raw.iter_rows(named=True)))
    workers = FaultyWorkers(spec.name, env, log_dir, consumers=consumers, seed=seed)
    workers.start_all()
    try:
        workers.kill_at_random(
            lambda: group_backlog(client, spec.name),
            lambda: busy_consumers(client, spec.name),
            kills,
        )
        workers.wait_drained(lambda: group_backlog(client, spec.name))
    finally:
        workers.stop()
    seconds = time.monotonic() - began

    meta = store.live_meta(client, spec.name)
    ids = store.customers(client, spec.name, meta.version)
    online = derive_frame(
        store.read_states(client, spec.name, meta.version, ids),
        PARITY_DATE,
        Knobs.of(spec, meta.first_day),
    )
    offline = batch_features(spec, duckdb_path, PARITY_DATE)
    mismatches = compare_features(online, offline, feature_set(spec).features, "customer_id")
    expected = batch_scores(spec, offline, PARITY_DATE)
    batch_p = dict(zip(expected["customer_id"], expected["churn_probability"], strict=True))
    latest = [
        s for s in latest_scores(client, spec.name).values() if s["as_of"] == str(PARITY_DATE)
    ]
    differences = {
        s["customer_id"]: abs(float(s["probability"]) - batch_p[s["customer_id"]]) for s in latest
    }
    stats = client.hgetall(store.stats_key(spec.name))
    return ParityReport(
        events=published,
        counted=int(counted),
        applied=int(client.scard(f"{store.version_base(spec.name, meta.version)}applied")),
        redelivered=int(stats.get(b"duplicates", 0)),
        kills=workers.kills,
        customers=offline.height,
        feature_mismatches=mismatches,
        scores=len(latest),
        score_mismatches=sorted(c for c, d in differences.items() if d > SCORE_TOLERANCE),
        max_score_difference=max(differences.values(), default=0.0),
        stream_seconds=seconds,
    )
