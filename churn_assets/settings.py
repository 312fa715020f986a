"""Every path and knob of the platform, in one place, handed to assets as a resource.

:func:`settings_from_env` reads environment variables (prefix ``CHURN_``) with defaults that make
the embedded setup work from a fresh clone: DuckDB under ``data/``, run state under ``.state/``.
It runs when the code location loads (inside ``@dg.definitions``), never at import, and tests
build :class:`ChurnSettings` directly with temporary paths instead of patching the environment.
Per-dataset knobs (windows, horizon, costs) are not here: they belong to each dataset's
declaration.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import dagster as dg

from churn_assets.lib.landing import LandingFolders
from churn_assets.lib.spark_lake import ENGINES

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt"

OWNER_DATA = "team:data-platform"
OWNER_ML = "team:ml"
OWNER_BUSINESS = "team:retention"


class ChurnSettings(dg.ConfigurableResource):
    """Resolved paths and platform knobs (see the README's Configuration section)."""

    home: str
    duckdb_path: str
    processed_dir: str
    reports_dir: str
    landing_dir: str
    state_dir: str
    mlflow_tracking_uri: str
    mlflow_artifact_root: str
    optuna_storage: str
    redis_url: str = "redis://127.0.0.1:6390/0"
    engine: str = "duckdb"
    """Which engine runs the dbt feature models: ``duckdb`` (one machine) or ``spark`` (the same
    models on Spark; marts come back into DuckDB, so nothing downstream changes)."""
    spark_dir: str = ""
    """The Spark engine's lake (parquet tables that outlive a Spark session); see
    :mod:`churn_assets.lib.spark_lake`."""
    seed: int = 42
    as_of: str = ""
    alert_webhook_url: str = ""
    ui_base_url: str = "http://127.0.0.1:3000"
    reports_url: str = "http://127.0.0.1:8765"
    """Where the reports folder is served (``make ui`` / ``make demo`` start a static server
    there), so report paths in the UI are links a browser opens."""

    def landing(self, dataset: str) -> LandingFolders:
        root = Path(self.landing_dir) / dataset
        return LandingFolders(
            root / "incoming", root / "pending", root / "accepted", root / "quarantine"
        )

    def replay_state_file(self, dataset: str) -> Path:
        """Holds ``{"as_of": "YYYY-MM-DD", ...}`` while a dataset replays history month by month."""
        return Path(self.state_dir) / "replay" / f"{dataset}.json"

    def history_as_of(self, dataset: str) -> date | None:
        """The date a dataset runs "as of": events on or after it are not known yet.

        ``CHURN_AS_OF`` wins; otherwise the dataset's replay state written by
        ``python -m churn_assets.replay``; otherwise None, meaning the full history.
        """
        if self.as_of:
            return date.fromisoformat(self.as_of)
        state = self.replay_state_file(dataset)
        if state.exists():
            return date.fromisoformat(json.loads(state.read_text())["as_of"])
        return None

    @property
    def spark_lake(self) -> Path:
        return Path(self.spark_dir or Path(self.duckdb_path).parent / "spark")

    def ensure_dirs(self) -> None:
        for folder in (
            self.processed_dir,
            self.reports_dir,
            self.landing_dir,
            self.state_dir,
            self.mlflow_artifact_root,
            str(Path(self.duckdb_path).parent),
        ):
            Path(folder).mkdir(parents=True, exist_ok=True)

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_base_url}/runs/{run_id}"

    def report_url(self, path: Path) -> str:
        """The link to a file under the reports folder, as the reports server serves it."""
        relative = Path(path).resolve().relative_to(Path(self.reports_dir).resolve())
        return f"{self.reports_url.rstrip('/')}/{relative.as_posix()}"


def settings_from_env(env: Mapping[str, str] | None = None) -> ChurnSettings:
    """Settings from ``CHURN_*`` variables, defaulting to the project-local embedded setup."""
    env = os.environ if env is None else env

    def path(name: str, default: Path) -> str:
        value = env.get(name)
        return str(Path(value).resolve() if value else default)

    home = Path(path("CHURN_HOME", REPO_ROOT))
    data = home / "data"
    engine = env.get("CHURN_ENGINE", "duckdb")
    if engine not in ENGINES:
        raise ValueError(f"CHURN_ENGINE={engine!r}: expected one of {', '.join(ENGINES)}")
    state = Path(path("CHURN_STATE_DIR", home / ".state"))
    return ChurnSettings(
        home=str(home),
        duckdb_path=path("CHURN_DUCKDB_PATH", data / "churn.duckdb"),
        processed_dir=path("CHURN_PROCESSED_DIR", data / "processed"),
        reports_dir=path("CHURN_REPORTS_DIR", data / "reports"),
        landing_dir=path("CHURN_LANDING_DIR", data / "landing"),
        state_dir=str(state),
        mlflow_tracking_uri=env.get(
            "CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
        ),
        mlflow_artifact_root=path("CHURN_MLFLOW_ARTIFACTS", state / "mlflow" / "artifacts"),
        optuna_storage=env.get("CHURN_OPTUNA_STORAGE", f"sqlite:///{state / 'optuna.db'}"),
        redis_url=env.get("CHURN_REDIS_URL", "redis://127.0.0.1:6390/0"),
        engine=engine,
        spark_dir=path("CHURN_SPARK_DIR", data / "spark"),
        seed=int(env.get("CHURN_SEED", "42")),
        as_of=env.get("CHURN_AS_OF", ""),
        alert_webhook_url=env.get("CHURN_ALERT_WEBHOOK_URL", ""),
        ui_base_url=env.get("CHURN_UI_BASE_URL", "http://127.0.0.1:3000"),
        reports_url=env.get("CHURN_REPORTS_URL", "http://127.0.0.1:8765"),
    )
