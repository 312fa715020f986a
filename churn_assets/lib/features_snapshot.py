"""Immutable, content-addressed training-set snapshots.

The version id is a hash of the provenance, which itself holds a hash of the data: unchanged
inputs give the same id, and an existing version directory is never rewritten (the snapshot is
assembled in a temporary sibling and moved into place with one ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from churn_assets.lib.training_set import DATA_FILE, PROVENANCE_FILE


def frame_sha256(frame: pl.DataFrame) -> str:
    """Hash of the rows as CSV text: independent of parquet writer versions and compression."""
    return hashlib.sha256(frame.write_csv().encode()).hexdigest()


def snapshot_version(provenance: dict[str, Any]) -> str:
    canonical = json.dumps(provenance, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def write_snapshot(
    root: Path, dataset: str, frame: pl.DataFrame, provenance: dict[str, Any]
) -> tuple[str, Path, bool]:
    """Write ``<root>/<dataset>/<version>/`` once; return (version, path, newly_written)."""
    provenance = {**provenance, "dataset": dataset, "data_sha256": frame_sha256(frame)}
    version = snapshot_version(provenance)
    provenance = {"version": version, **provenance}
    parent = root / dataset
    target = parent / version
    if target.exists():
        return version, target, False
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=parent))
    try:
        frame.write_parquet(staging / DATA_FILE)
        (staging / PROVENANCE_FILE).write_text(
            json.dumps(provenance, indent=2, sort_keys=True, default=str) + "\n"
        )
        try:
            os.replace(staging, target)
        except OSError:
            if not target.exists():  # a concurrent writer of the same version got there first
                raise
            return version, target, False
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version, target, True
