"""Shared fixtures: every test gets its own project home, passed as settings (never patched
into the environment), so nothing touches the real state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from churn_assets.lib.datasets import DatasetSpec, load_declarations
from churn_assets.resources import build_resources
from churn_assets.settings import ChurnSettings, settings_from_env
from churn_assets_tests.redis_server import redis_server  # noqa: F401 (a fixture for every test)


def settings_for(home: Path, **overrides: Any) -> ChurnSettings:
    """The embedded defaults rooted at ``home`` (state, data, MLflow, Optuna all inside it).

    Overrides build a new resource: ``model_copy`` on a ConfigurableResource changes the Python
    object but not the config Dagster re-creates it from.
    """
    base = settings_from_env({"CHURN_HOME": str(home)})
    settings = ChurnSettings(**{**base.model_dump(), **overrides})
    settings.ensure_dirs()
    return settings


@pytest.fixture
def settings(tmp_path: Path) -> ChurnSettings:
    return settings_for(tmp_path)


@pytest.fixture
def resources(settings: ChurnSettings) -> dict[str, Any]:
    return build_resources(settings)


@pytest.fixture(scope="session")
def specs() -> dict[str, DatasetSpec]:
    """The bundled declarations (retail: events, telco: snapshot)."""
    return load_declarations()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-graph-snapshot",
        action="store_true",
        help="rewrite churn_assets_tests/graph_snapshot.txt from the current definitions",
    )
