"""The code location loads, and the graph has the shape the product promises.

``graph_snapshot.txt`` is the whole asset graph as text (keys, groups, deps, checks, partitions,
jobs, sensors, schedules): any change to the graph is a visible diff in review. After an
intended change: ``pytest churn_assets_tests/test_definitions.py --update-graph-snapshot``.
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from churn_assets.definitions import build_definitions
from churn_assets.settings import REPO_ROOT, ChurnSettings
from churn_assets_tests.conftest import settings_for

SNAPSHOT = Path(__file__).with_name("graph_snapshot.txt")


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    settings: ChurnSettings = settings_for(tmp_path_factory.mktemp("home"))
    return build_definitions(settings)


def graph_text(defs: dg.Definitions) -> str:
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable:
            lines.append(f"external {key.to_user_string()}")
            continue
        deps = ", ".join(sorted(k.to_user_string() for k in node.parent_keys))
        partitions = (
            node.partitions_def.name
            if isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
            else "-"
        )
        lines.append(
            f"asset {key.to_user_string()} group={node.group_name} partitions={partitions} "
            f"pools={sorted(node.pools or [])} deps=[{deps}]"
        )
    blocking = {
        spec.key
        for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable
        for spec in graph.get(key).assets_def.check_specs
        if spec.blocking
    }
    lines += sorted(
        f"check {check.to_user_string()}{' (blocking)' if check in blocking else ''}"
        for check in graph.asset_check_keys
    )
    lines += sorted(f"job {job.name}" for job in defs.jobs or [])
    lines += sorted(f"sensor {sensor.name}" for sensor in defs.sensors or [])
    lines += sorted(f"schedule {schedule.name}" for schedule in defs.schedules or [])
    return "\n".join(lines) + "\n"


def test_graph_matches_the_committed_snapshot(
    defs: dg.Definitions, request: pytest.FixtureRequest
) -> None:
    current = graph_text(defs)
    if request.config.getoption("--update-graph-snapshot"):
        SNAPSHOT.write_text(current)
    diff = "".join(
        difflib.unified_diff(
            SNAPSHOT.read_text().splitlines(keepends=True),
            current.splitlines(keepends=True),
            "graph_snapshot.txt",
            "current definitions",
        )
    )
    assert not diff, f"the asset graph changed (update with --update-graph-snapshot):\n{diff}"


def test_every_dataset_gets_every_stage_and_contracts_block(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    groups: dict[tuple[str, str], set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            groups.setdefault((node.tags["dataset"], node.group_name), set()).add(
                key.to_user_string()
            )
    for dataset in ("retail", "telco"):
        assert {g for d, g in groups if d == dataset} == {
            "sources",
            "features",
            "training",
            "monitoring",
            "serving",
            "business",
            "evaluation",
        }, dataset
    for raw in ("retail_raw_events", "telco_raw_customers"):
        specs = graph.get(dg.AssetKey(raw)).assets_def.check_specs
        assert [s.name for s in specs] == ["contract"] and all(s.blocking for s in specs)


def test_every_asset_is_documented_owned_and_writers_share_the_duckdb_pool(
    defs: dg.Definitions,
) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_materializable:
            continue
        name = key.to_user_string()
        assert node.description, f"{name} has no description"
        assert node.owners, f"{name} has no owner"
        assert node.kinds, f"{name} has no kinds"
        if node.group_name in ("sources", "features", "monitoring", "serving", "business"):
            assert node.pools == {"duckdb"}, name


def test_dagster_cli_validates_the_code_location() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
