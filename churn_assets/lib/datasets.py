"""A dataset is a declaration: what a user writes to bring their own customers or events.

One YAML file per dataset (``churn_assets/defs/datasets/<name>/defs.yaml``, a Dagster component
whose attributes are a :class:`DatasetSpec`) names its kind, its files, the mapping from the
user's column names to the contract's, how timestamps are written, the dataset's own rules and
its knobs. Everything downstream (contracts, dbt vars, feature registry, training protocol,
monitoring, serving) reads the spec; nothing else in the code names a dataset.

Two kinds exist:

* ``events``: a log of purchases, returns and cancellations per customer (UCI Online Retail II
  is one). Features are point-in-time windows over daily tiles, labels look ``horizon`` days
  ahead, observation dates are month starts.
* ``snapshot``: one row per customer with a churn label already in it (IBM Telco is one).

This module is pure (pydantic + yaml): the CLI, the replay tool, the API and the tests load
declarations without Dagster.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta
from glob import glob
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from churn_assets.lib.months import month_after, shift_months

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DECLARATIONS_DIR = PROJECT_ROOT / "churn_assets" / "defs" / "datasets"
DECLARATION_FILE = "defs.yaml"
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,30}$"
FileFormat = Literal["csv", "parquet"]
Family = Literal[
    "recency",
    "frequency",
    "spend",
    "returns",
    "season",
    "contract",
    "price",
    "service",
    "demographics",
]


class Strict(BaseModel):
    """Unknown keys in a declaration are typos: refuse them instead of ignoring them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RowRule(Strict):
    """A dataset-specific rule every row must satisfy, as a SQL expression over the contract's
    column names (evaluated with Polars SQL at load time, before anything is replaced)."""

    name: str
    check: str
    description: str = ""


class Exclusion(Strict):
    """Rows that are valid but carry no churn signal (e.g. bad-debt adjustments): kept in the
    raw table for audit, dropped by staging and counted under ``reason``."""

    reason: str
    when: str


class Timestamps(Strict):
    """How the event time is written in the user's files.

    ``format`` is a strftime pattern (None: ISO-8601 or the file's native timestamp type).
    Times are stored as local wall-clock time of ``timezone``, because days and month starts
    (the observation dates) are the business's own calendar days; tz-aware inputs are converted.
    """

    format: str | None = None
    timezone: str = "UTC"
    earliest: date | None = None


class EventColumns(Strict):
    """The user's column name for each contract field (None: not in the data)."""

    customer_id: str
    event_ts: str
    amount: str | None = None
    order_id: str | None = None
    product_id: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    event_type: str | None = None
    segments: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _amount_source(self) -> EventColumns:
        if self.amount is None and (self.quantity is None or self.unit_price is None):
            raise ValueError("map 'amount', or both 'quantity' and 'unit_price' (amount = q x p)")
        return self


class EventTypes(Strict):
    """How each row becomes a purchase, return or cancellation.

    With an ``event_type`` column, its values are mapped through ``values``. Otherwise a row is a
    cancellation when ``cancellation_when`` holds, a return when its quantity (or, without
    quantity, its amount) is negative, and a purchase else.
    """

    values: dict[Literal["purchase", "return", "cancellation"], list[str]] = Field(
        default_factory=dict
    )
    cancellation_when: str | None = None


class Observation(Strict):
    """Observation dates T (month starts). Unset bounds are derived from the data: from the
    first month with enough history for the longest window to the newest month start the data
    covers (see :func:`observation_calendar`)."""

    start: date | None = None
    end: date | None = None
    grace_days: int = Field(default=10, ge=0)
    """A month start this many days after the day after the last event still counts as covered:
    a shop closed over the holidays has no events, not missing ones."""


class EventsSpec(Strict):
    columns: EventColumns
    event_types: EventTypes = EventTypes()
    rules: list[RowRule] = Field(default_factory=list)
    exclude: list[Exclusion] = Field(default_factory=list)
    timestamps: Timestamps = Timestamps()
    currency: str = "GBP"
    windows: list[int] = Field(default_factory=lambda: [30, 60, 90])
    long_windows: list[int] = Field(default_factory=lambda: [180, 365])
    label_horizon_days: int = 90
    active_window_days: int = 90
    observation: Observation = Observation()
    overlap_policy: Literal["refuse", "replace_days"] = "refuse"
    missing_customer: Literal["refuse", "drop"] = "refuse"
    """``drop``: rows without a customer are kept in the raw table and dropped (and counted) by
    staging, as anonymous checkout lines must be; ``refuse``: such a row breaks the contract."""

    @field_validator("windows", "long_windows")
    @classmethod
    def _sorted_positive(cls, value: list[int]) -> list[int]:
        if any(w <= 0 for w in value) or sorted(set(value)) != value:
            raise ValueError(f"windows must be distinct positive days in ascending order: {value}")
        return value

    @model_validator(mode="after")
    def _windows(self) -> EventsSpec:
        if len(self.windows) < 2:
            raise ValueError("declare at least two windows (the trend features compare them)")
        if self.long_windows and self.long_windows[0] <= self.windows[-1]:
            raise ValueError("long_windows must all be longer than the longest window")
        return self


class SnapshotColumn(Strict):
    """One column of the customer file and its contract."""

    name: str
    column: str
    type: Literal["integer", "numeric", "boolean", "categorical"]
    values: list[str] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    blank_allowed_when: str | None = None
    fill_blank: float | None = None
    description: str = ""


class SnapshotFeature(Strict):
    """A feature: a declared column (``sql`` None) or a SQL expression over declared columns,
    computed by dbt (portable SQL: it runs on DuckDB and on Spark)."""

    name: str
    sql: str | None = None
    type: Literal["integer", "numeric", "boolean", "categorical"] | None = None
    family: Family
    description: str = ""


class Label(Strict):
    column: str
    positive: list[str]
    negative: list[str]
    description: str = ""


class SnapshotSpec(Strict):
    id_column: str
    id_pattern: str | None = None
    snapshot_date: date
    label: Label
    columns: list[SnapshotColumn]
    features: list[SnapshotFeature]
    rules: list[RowRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _features_known(self) -> SnapshotSpec:
        names = {c.name for c in self.columns}
        for feature in self.features:
            if feature.sql is None and feature.name not in names:
                raise ValueError(f"feature '{feature.name}' is neither a column nor has sql")
            if feature.sql is not None and feature.type is None:
                raise ValueError(f"derived feature '{feature.name}' needs a type")
        return self

    def column(self, name: str) -> SnapshotColumn:
        return next(c for c in self.columns if c.name == name)


class Decision(Strict):
    """Per-dataset costs of the two errors: the operating threshold is C_fp / (C_fp + C_fn)."""

    cost_false_positive: float = 1.0
    cost_false_negative: float = 4.0


class Targets(Strict):
    """Quality bars checked (as warnings) on every new model."""

    roc_auc: float = 0.80


class DatasetSpec(Strict):
    """One dataset, as declared. See ``docs/data_contract.md`` for every field."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    kind: Literal["events", "snapshot"]
    description: str = ""
    entity: str = "customer"
    files: list[str]
    format: FileFormat | None = None
    events: EventsSpec | None = None
    snapshot: SnapshotSpec | None = None
    decision: Decision = Decision()
    targets: Targets = Targets()
    shrink_guard: float = Field(default=0.5, ge=0.0, le=1.0)
    owner: str = "team:data-platform"

    @model_validator(mode="after")
    def _kind_section(self) -> DatasetSpec:
        if self.kind == "events" and self.events is None:
            raise ValueError("kind 'events' needs an 'events' section")
        if self.kind == "snapshot" and self.snapshot is None:
            raise ValueError("kind 'snapshot' needs a 'snapshot' section")
        if not self.files:
            raise ValueError("declare at least one file (a path or a glob)")
        return self

    @property
    def ev(self) -> EventsSpec:
        assert self.events is not None, f"{self.name} is not an events dataset"
        return self.events

    @property
    def snap(self) -> SnapshotSpec:
        assert self.snapshot is not None, f"{self.name} is not a snapshot dataset"
        return self.snapshot

    @property
    def protocol(self) -> Literal["random", "out_of_time"]:
        """Events have time: test on later months. A snapshot has none: a random hold-out."""
        return "out_of_time" if self.kind == "events" else "random"

    @property
    def raw_table(self) -> str:
        return "events" if self.kind == "events" else "customers"

    def db_schema(self, stage: str) -> str:
        """DuckDB schema of a stage's tables: ``<dataset>_<stage>``."""
        return f"{self.name}_{stage}"

    @property
    def scoring_table(self) -> str:
        """Customers to score at T with their features: the active ones (events), or every
        customer of the snapshot. Batch scores, drift and the API's offline scoring read it."""
        table = "features_monthly" if self.kind == "events" else "fct_snapshot_features"
        return f"{self.db_schema('features')}.{table}"

    def key(self, name: str) -> str:
        """Asset key (and check/job/sensor name) of one node of this dataset's graph."""
        return f"{self.name}_{name}"

    def source_files(self, root: Path = PROJECT_ROOT) -> list[Path]:
        """Declared files, globs expanded in sorted order, ``$VARIABLES`` from the environment,
        relative paths from the project root."""
        paths: list[Path] = []
        for pattern in self.files:
            expanded = os.path.expandvars(pattern)
            full = expanded if Path(expanded).is_absolute() else str(root / expanded)
            matches = sorted(glob(full))
            paths += [Path(m) for m in matches] if matches else [Path(full)]
        return paths

    def file_format(self, path: Path) -> FileFormat:
        if self.format:
            return self.format
        suffix = path.suffix.lower()
        if suffix in (".csv", ".txt", ".gz"):
            return "csv"
        return "parquet"

    def label_definition(self) -> str:
        """The label in words, as provenance, the MLflow run and the docs show it."""
        if self.kind == "snapshot":
            return (
                f"churned = 1 if column '{self.snap.label.column}' is one of "
                f"{self.snap.label.positive}; one fixed snapshot at {self.snap.snapshot_date}. "
                + self.snap.label.description
            ).strip()
        ev = self.ev
        return (
            f"churned = 1 if the customer, active at T (>= 1 purchase in "
            f"[T - {ev.active_window_days}d, T)), makes no purchase in "
            f"[T, T + {ev.label_horizon_days}d); 0 otherwise. Labels whose horizon ends after the "
            "last event are immature and excluded. Features at T use only events with event_ts < T."
        )


def observation_calendar(
    spec: DatasetSpec,
    first_event: datetime,
    last_event: datetime,
    known_until: date | None = None,
) -> tuple[list[date], list[str]]:
    """Observation dates T for an events dataset, and warnings about what was clipped.

    Derived: the first month start T with ``T - longest window >= first event day`` (every
    window of the first T is covered by data), up to the newest month start the data covers: the
    day after the last event (a feature at T sees events before T), plus ``grace_days``, or
    ``known_until`` (a replay's as-of date: history before it is complete by definition). A
    declared end past that is clipped and reported, because a month without data would look
    like everyone churned.
    """
    ev = spec.ev
    first_day = first_event.date()
    earliest = shift_months(first_day, 0)
    while earliest - timedelta(days=max(ev.windows)) < first_day:
        earliest = month_after(earliest)
    covered = last_event.date() + timedelta(days=1 + ev.observation.grace_days)
    if known_until is not None:
        covered = max(covered, known_until)
    latest = shift_months(covered, 0)
    warnings = []
    start = ev.observation.start or earliest
    end = ev.observation.end or latest
    if end > latest:
        warnings.append(
            f"declared observation end {end} is past the data (last event {last_event}): "
            f"clipped to {latest}"
        )
        end = latest
    if start < earliest and ev.observation.start is not None:
        warnings.append(
            f"declared observation start {start} leaves the first windows without data "
            f"(first event {first_event}); kept as declared"
        )
    dates = []
    current = shift_months(start, 0)
    while current <= end:
        dates.append(current)
        current = month_after(current)
    return dates, warnings


def load_declaration(path: Path) -> DatasetSpec:
    """Read one ``defs.yaml`` (its ``attributes`` are the spec); errors name the file."""
    try:
        document = yaml.safe_load(path.read_text())
        return DatasetSpec.model_validate(document["attributes"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: invalid dataset declaration: {exc}") from exc


def load_declarations(folder: Path = DECLARATIONS_DIR) -> dict[str, DatasetSpec]:
    """Every declared dataset under ``folder`` (one sub-folder each), by name."""
    specs = [load_declaration(p) for p in sorted(folder.glob(f"*/{DECLARATION_FILE}"))]
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"datasets declared twice: {duplicated}")
    return {s.name: s for s in specs}


def sql_identifier(name: str) -> str:
    """Refuse anything that is not a plain identifier before it is spliced into SQL."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def as_dict(spec: DatasetSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")
