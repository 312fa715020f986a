"""Every path and knob of the platform, in one place.

Values come from environment variables (prefix ``CHURN_``) with defaults that make the
embedded setup work from a fresh clone: DuckDB under ``data/``, run state under ``.state/``.
Tests point ``CHURN_HOME`` (or single variables) at a temporary folder to stay isolated.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
DBT_PROJECT_DIR = REPO_ROOT / "dbt"

TELCO_FILE = "telco/WA_Fn-UseC_-Telco-Customer-Churn.csv"
RETAIL_FILE = "online_retail_ii/online_retail_ii_events.parquet"

OWNER_DATA = "team:data-platform"
OWNER_ML = "team:ml"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).resolve() if value else default


def _env_date(name: str, default: date | None) -> date | None:
    value = os.environ.get(name)
    return date.fromisoformat(value) if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Build it with :func:`get_settings`, never by hand in assets."""

    home: Path
    raw_dir: Path
    duckdb_path: Path
    processed_dir: Path
    reports_dir: Path
    landing_dir: Path
    quarantine_dir: Path
    accepted_dir: Path
    state_dir: Path
    mlflow_tracking_uri: str
    mlflow_artifact_root: Path
    optuna_storage: str
    observation_start: date
    observation_end: date
    label_horizon_days: int
    retail_as_of: date | None
    seed: int
    alert_webhook_url: str | None

    @property
    def telco_csv(self) -> Path:
        return self.raw_dir / TELCO_FILE

    @property
    def retail_parquet(self) -> Path:
        return self.raw_dir / RETAIL_FILE

    @property
    def replay_state_file(self) -> Path:
        """Holds ``{"as_of": "YYYY-MM-DD"}`` while the platform replays history month by month."""
        return self.state_dir / "replay.json"

    def retail_source_files(self) -> list[Path]:
        """The bundled history plus every landed file the new-data sensor has accepted."""
        return [self.retail_parquet, *sorted(self.accepted_dir.glob("*.parquet"))]

    def history_as_of(self) -> date | None:
        """The date the platform runs "as of": events on or after it are not yet known.

        ``CHURN_RETAIL_AS_OF`` wins; otherwise the replay state written by
        ``python -m churn_assets.replay``; otherwise None, meaning the full bundled history.
        """
        if self.retail_as_of:
            return self.retail_as_of
        if self.replay_state_file.exists():
            return date.fromisoformat(json.loads(self.replay_state_file.read_text())["as_of"])
        return None

    def ensure_dirs(self) -> None:
        for folder in (
            self.processed_dir,
            self.reports_dir,
            self.landing_dir,
            self.quarantine_dir,
            self.accepted_dir,
            self.state_dir,
            self.mlflow_artifact_root,
            self.duckdb_path.parent,
        ):
            folder.mkdir(parents=True, exist_ok=True)


@cache
def get_settings() -> Settings:
    """Read the environment once per process; call ``get_settings.cache_clear()`` in tests."""
    home = _env_path("CHURN_HOME", REPO_ROOT)
    data = home / "data"
    state = _env_path("CHURN_STATE_DIR", home / ".state")
    return Settings(
        home=home,
        raw_dir=_env_path("CHURN_RAW_DIR", REPO_ROOT / "data" / "raw"),
        duckdb_path=_env_path("CHURN_DUCKDB_PATH", data / "churn.duckdb"),
        processed_dir=_env_path("CHURN_PROCESSED_DIR", data / "processed"),
        reports_dir=_env_path("CHURN_REPORTS_DIR", data / "reports"),
        landing_dir=_env_path("CHURN_LANDING_DIR", data / "landing" / "incoming"),
        quarantine_dir=_env_path("CHURN_QUARANTINE_DIR", data / "landing" / "quarantine"),
        accepted_dir=_env_path("CHURN_ACCEPTED_DIR", data / "landing" / "accepted"),
        state_dir=state,
        mlflow_tracking_uri=os.environ.get(
            "CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
        ),
        mlflow_artifact_root=_env_path("CHURN_MLFLOW_ARTIFACTS", state / "mlflow" / "artifacts"),
        optuna_storage=os.environ.get("CHURN_OPTUNA_STORAGE", f"sqlite:///{state / 'optuna.db'}"),
        observation_start=_env_date("CHURN_OBSERVATION_START", date(2010, 3, 1))
        or date(2010, 3, 1),
        observation_end=_env_date("CHURN_OBSERVATION_END", date(2011, 12, 1)) or date(2011, 12, 1),
        label_horizon_days=int(os.environ.get("CHURN_LABEL_HORIZON_DAYS", "90")),
        retail_as_of=_env_date("CHURN_RETAIL_AS_OF", None),
        seed=int(os.environ.get("CHURN_SEED", "42")),
        alert_webhook_url=os.environ.get("CHURN_ALERT_WEBHOOK_URL") or None,
    )
