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
    entity: str = "customer_id"
    time_column: str = "observation_date"
    label: str = "churned"
    extra: dict[str, str] = field(default_factory=dict)

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
