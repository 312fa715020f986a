"""The Dagster UI, rendered in headless Chromium: lineage, asset docs/owners, automations, and
the stakeholder demo path of docs/demo.md down to the executive report.

Starts ``dagster-webserver`` on the real code location with a throwaway DAGSTER_HOME and
project home, and saves a screenshot per page under ``test-artifacts/`` (kept by CI). GraphQL
cross-checks the full dependency path; the assertions on what a person sees use the page.
Before the server starts, the business group is materialized for one real retail month (the
bundled data with stand-in scores, see ``churn_assets_tests.business.real_data``) into that
DAGSTER_HOME, and the reports folder is served as ``make ui`` serves it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from churn_assets.settings import REPO_ROOT
from churn_assets_tests.business.real_data import materialize_business, seed_inputs
from churn_assets_tests.conftest import settings_for

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"
LOAD_TIMEOUT_S = 240
ASSETS_QUERY = """{ assetNodes { assetKey { path } dependencyKeys { path } groupName description
  owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } } }"""
LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
SENSORS = ("retail_landing_sensor", "retail_month_after_ingest_sensor", "retail_retraining_sensor")
DEMO_MONTH = date(2010, 12, 1)
LINEAGE_PATH = (
    "retail_raw_events",
    "retail_features_monthly",
    "retail_scores",
    "retail_drift_report",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(base: str, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def _wait_until_loaded(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until the code location is loaded; fail with its error or the server log."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"dagster-webserver exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            entries = graphql(base, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
        except (urllib.error.URLError, OSError, KeyError, TypeError):
            time.sleep(1)
            continue
        states = [e["locationOrLoadError"] for e in entries]
        if states and all(s and s["__typename"] == "RepositoryLocation" for s in states):
            return
        errors = [s["message"] for s in states if s and s["__typename"] == "PythonError"]
        if errors:
            pytest.fail(f"code location failed to load:\n{errors[0][-3000:]}")
        time.sleep(1)
    pytest.fail(f"code location not loaded after {LOAD_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


@contextmanager
def _serving(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server for the block, then stop it and whatever it spawned (its own session)."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def ui_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project home and DAGSTER_HOME where the demo's business group has been materialized
    for one real month (what ``make demo`` prepares, on a smaller scale)."""
    root = tmp_path_factory.mktemp("ui")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", dagster_home / "dagster.yaml")
    port = _free_port()
    settings = settings_for(root / "home", reports_url=f"http://127.0.0.1:{port}")
    (root / "reports_port").write_text(str(port))
    seed_inputs(settings.duckdb_path, DEMO_MONTH)
    no_pdf = {"ops": {"retail_executive_report": {"config": {"pdf": False}}}}
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        result = materialize_business(settings, instance, "retail", DEMO_MONTH, no_pdf)
        assert result.success
    return root


@pytest.fixture(scope="module")
def reports(ui_root: Path) -> Iterator[str]:
    """The reports folder over HTTP on loopback, as ``make ui`` serves it."""
    port = (ui_root / "reports_port").read_text()
    folder = ui_root / "home" / "data" / "reports"
    command = [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1"]
    with _serving([*command, "--directory", str(folder)], ui_root / "reports.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def webserver(ui_root: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(ui_root / "dagster_home")}
    env["CHURN_HOME"] = str(ui_root / "home")
    env["CHURN_REPORTS_URL"] = f"http://127.0.0.1:{(ui_root / 'reports_port').read_text()}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{ui_root / 'home' / '.state' / 'mlflow' / 'mlflow.db'}"
    log = ui_root / "webserver.log"
    webserver = str(Path(sys.executable).with_name("dagster-webserver"))
    command = [webserver, "-m", "churn_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]
    with _serving(command, log, env) as server:
        base = f"http://127.0.0.1:{port}"
        _wait_until_loaded(base, server, log)
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser test needs Debian's chromium "
            "(`apt-get install -y chromium`, done by `make system-deps`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


def _open(page: Any, url: str, ready_text: str) -> None:
    page.goto(url)
    page.get_by_text(ready_text, exact=True).first.wait_for()
    skip = page.get_by_role("button", name="Skip")  # Dagster's one-off "join the community" modal
    try:
        skip.wait_for(timeout=3_000)
        skip.click()
    except Exception:
        pass


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _label_matches(label: str, name: str) -> bool:
    """Zoomed-out graph nodes elide the middle of long names: ``raw_…_transactions``."""
    head, _, tail = label.partition("…")
    return label == name or ("…" in label and name.startswith(head) and name.endswith(tail))


def test_lineage_from_raw_tables_to_drift_report(webserver: str, page: Any) -> None:
    nodes = {
        tuple(n["assetKey"]["path"]): n for n in graphql(webserver, ASSETS_QUERY)["assetNodes"]
    }
    for upstream, downstream in itertools.pairwise(LINEAGE_PATH):
        reachable, frontier = set(), [(downstream,)]
        while frontier:
            key = frontier.pop()
            for dep in nodes[key]["dependencyKeys"]:
                if (path := tuple(dep["path"])) not in reachable:
                    reachable.add(path)
                    frontier.append(path)
        assert (upstream,) in reachable, f"{downstream} does not depend on {upstream}"

    _open(
        page,
        f"{webserver}/assets/retail_drift_report?view=lineage&lineageScope=upstream&lineageDepth=20",
        "retail_drift_report",
    )
    page.locator('[class*="AssetNode_assetName"]').first.wait_for()
    page.wait_for_timeout(1_500)  # let the layout settle before the screenshot
    _shot(page, "lineage_raw_to_drift")
    labels = page.locator('[class*="AssetNode_assetName"]').all_inner_texts()
    for name in LINEAGE_PATH:
        assert any(_label_matches(label.strip(), name) for label in labels), (name, labels)
    for group in ("sources", "features", "monitoring"):
        assert page.get_by_text(group, exact=True).count() >= 1, group


def test_asset_page_shows_description_and_owner(webserver: str, page: Any) -> None:
    _open(page, f"{webserver}/assets/retail_scores", "retail_scores")
    page.get_by_text("Churn probability, risk decile", exact=False).first.wait_for()
    owners = page.get_by_text("Owners", exact=True).first
    owners.wait_for()
    owners.scroll_into_view_if_needed()
    _shot(page, "asset_retail_scores")
    text = page.inner_text("body")
    assert "Owners\nml" in text or "Owners\n\nml" in text, text[text.find("Owners") - 50 :][:200]
    assert "monitoring" in text  # group


def test_automation_page_lists_sensors_and_schedule(webserver: str, page: Any) -> None:
    _open(page, f"{webserver}/automation", "retail_landing_sensor")
    for name in (*SENSORS, "retail_monthly_scoring_schedule"):
        page.get_by_text(name, exact=True).first.wait_for()
    _shot(page, "automation")


BUSINESS_PATH = (
    "retail_scores",
    "retail_customer_value",
    "retail_cohorts",
    "retail_retention_actions",
    "retail_campaign_plan",
    "retail_executive_report",
)


def test_demo_path_from_the_business_lineage_to_the_executive_report(
    webserver: str, reports: str, page: Any
) -> None:
    """docs/demo.md, steps 1-5: the business lineage, the campaign's checks, the KPI
    definitions, the report asset's links, and the report itself opened from its link."""
    _open(
        page,
        f"{webserver}/assets/retail_executive_report?view=lineage&lineageScope=upstream"
        "&lineageDepth=6",
        "retail_executive_report",
    )
    page.locator('[class*="AssetNode_assetName"]').first.wait_for()
    page.wait_for_timeout(1_500)
    _shot(page, "demo_1_business_lineage")
    labels = page.locator('[class*="AssetNode_assetName"]').all_inner_texts()
    for name in BUSINESS_PATH:
        assert any(_label_matches(label.strip(), name) for label in labels), (name, labels)

    _open(page, f"{webserver}/assets/retail_campaign_plan?view=checks", "retail_campaign_plan")
    page.get_by_text("sample_ratio", exact=True).first.wait_for()
    page.get_by_text("within_budget", exact=True).first.wait_for()
    _shot(page, "demo_2_campaign_checks")
    assert "Failed" not in page.inner_text("body")

    _open(page, f"{webserver}/assets/retail_business_kpis", "retail_business_kpis")
    page.get_by_text("top decile capture", exact=True).first.wait_for()
    _shot(page, "demo_3_kpi_definitions")

    _open(
        page, f"{webserver}/assets/retail_executive_report?view=events", "retail_executive_report"
    )
    link = page.locator(f'a[href^="{reports}"][href$="/executive_report.html"]').first
    link.wait_for()
    _shot(page, "demo_4_report_asset")
    href = str(link.get_attribute("href"))

    page.goto(href)
    page.get_by_text("Customer retention report: retail", exact=True).wait_for()
    _shot(page, "demo_5_executive_report")
    text = page.inner_text("body")
    for section in ("Headline numbers", "Cohort map", "Campaign plan", "Backtest of this month"):
        assert section in text, section
    assert "contacted" in text and "GBP" in text
    csv = page.get_by_role("link", name="CSV", exact=False).get_attribute("href")
    with urllib.request.urlopen(urllib.parse.urljoin(href, str(csv)), timeout=30) as response:
        header = response.readline().decode()
    assert "main_reason" in header and "recommended_action" in header
