"""Entry point for the Makefile/CLI (``churn_assets.cli prepare``): build the dbt manifest."""

from pathlib import Path

from churn_assets.lib import features_dbt


def prepare_dbt_manifest() -> Path:
    """Re-parse the dbt project (``dbt parse``, ~4 s) so the manifest matches the SQL on disk.

    Always parsing, rather than only when the file is missing, means an edited model can never
    run against a stale manifest; the code location itself only parses when the file is missing
    (or under ``dagster dev``), so loading stays cheap.
    """
    return features_dbt.prepare_manifest().manifest_path
