"""The hand-off between the feature store and training: a versioned, immutable snapshot.

A snapshot lives in ``<processed_dir>/<dataset>/<version>/`` and holds ``training_set.parquet``
plus ``provenance.json``. Assets pass :class:`TrainingSet` values (small, picklable), never
"the newest folder on disk".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

DATA_FILE = "training_set.parquet"
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class TrainingSet:
    dataset: str
    version: str
    path: Path
    numeric_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    excluded_features: dict[str, str] = field(default_factory=dict)
    """Declared features left out of training on this data, with the reason (constant, or
    identical to another feature)."""
    entity: str = "customer_id"
    time_column: str = "observation_date"
    label: str = "churned"

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features

    @property
    def data_file(self) -> Path:
        return self.path / DATA_FILE

    @property
    def provenance_file(self) -> Path:
        return self.path / PROVENANCE_FILE

    def frame(self) -> pl.DataFrame:
        return pl.read_parquet(self.data_file)


def unsupported_features(frame: pl.DataFrame, names: tuple[str, ...]) -> dict[str, str]:
    """Features this data cannot support, with the reason: constant over every row, or equal,
    row for row, to a feature declared before them (kept: the first of each group).

    A model cannot learn from them, and identical columns split importance and explanations
    between two names for one signal, so the training set leaves them out and says why.
    """
    reasons: dict[str, str] = {}
    kept: list[str] = []
    for name in names:
        column = frame[name]
        if column.n_unique() <= 1:
            value = column[0] if frame.height else None
            reasons[name] = f"constant on this data (every row is {value!r})"
            continue
        twin = next((k for k in kept if frame[k].equals(column, check_names=False)), None)
        if twin is not None:
            reasons[name] = f"identical to {twin} on every row"
            continue
        kept.append(name)
    return reasons
