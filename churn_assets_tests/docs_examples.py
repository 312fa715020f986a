"""The YAML examples of the docs, read from the Markdown itself so a test runs what users read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from churn_assets.settings import REPO_ROOT

DATA_CONTRACT = REPO_ROOT / "docs" / "data_contract.md"


def example(marker: str, path: Path = DATA_CONTRACT) -> dict[str, Any]:
    """The ```yaml block that follows ``<!-- marker -->`` in a Markdown file."""
    text = path.read_text()
    match = re.search(rf"<!-- {re.escape(marker)} -->\s*```yaml\n(.*?)```", text, re.DOTALL)
    assert match, f"no yaml block after <!-- {marker} --> in {path}"
    return yaml.safe_load(match.group(1))
