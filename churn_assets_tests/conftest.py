"""Shared fixtures: every test gets its own project home, so nothing touches the real state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from churn_assets.settings import Settings, get_settings


@pytest.fixture
def churn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Point every setting at ``tmp_path`` (raw data stays the bundled read-only copy)."""
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    monkeypatch.setenv(
        "MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / '.state' / 'mlflow' / 'mlflow.db'}"
    )
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_dirs()
    yield settings
    get_settings.cache_clear()
