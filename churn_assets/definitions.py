"""The code location: every stage under ``defs/`` plus the shared resources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from churn_assets.resources import build_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(project_root=Path(__file__).resolve().parent.parent),
        dg.Definitions(resources=build_resources()),
    )
