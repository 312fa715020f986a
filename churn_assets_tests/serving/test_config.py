"""The service's configuration from the environment, and its errors in operators' terms."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from churn_assets.serving.config import ServerConfig, ServingConfig

pytestmark = pytest.mark.xdist_group("serving")

KEY = "k" * 16


def test_variables_become_typed_settings() -> None:
    config = ServingConfig.from_env(
        {
            "CHURN_SERVING_DATASETS": "retail, telco",
            "CHURN_API_KEYS": f"{KEY},{KEY}2",
            "CHURN_MAX_IDS_PER_REQUEST": "250",
            "CHURN_MLFLOW_TRACKING_URI": "http://mlflow:5000",
            "CHURN_OFFLINE_TABLE": "{dataset}_features.fct_snapshot_features",
        }
    )
    assert config.datasets == ("retail", "telco")
    assert config.api_keys == {KEY, f"{KEY}2"}
    assert config.max_ids_per_request == 250
    assert config.mlflow_tracking_uri == "http://mlflow:5000"
    assert config.table_for("telco") == "telco_features.fct_snapshot_features"
    # without a template, each dataset's declared scoring table
    default = ServingConfig.from_env(
        {"CHURN_SERVING_DATASETS": "retail,telco", "CHURN_API_KEYS": KEY}
    )
    assert default.table_for("retail") == "retail_features.features_monthly"
    assert default.table_for("telco") == "telco_features.fct_snapshot_features"
    assert KEY not in repr(config)  # keys never reach logs through the config's repr
    server = ServerConfig.from_env({"CHURN_SERVING_PORT": "9000", "CHURN_SERVING_ACCESS_LOG": "0"})
    assert (server.port, server.access_log, server.workers) == (9000, False, 1)


def test_errors_name_the_variables_to_fix() -> None:
    with pytest.raises(ValidationError) as caught:
        ServingConfig.from_env(
            {
                "CHURN_SERVING_DATASETS": "Retail",
                "CHURN_API_KEYS": "short",
                "CHURN_MAX_IDS_PER_REQUEST": "5000",
                "CHURN_OFFLINE_TABLE": "x; DROP TABLE y",
            }
        )
    message = ServingConfig.explain(caught.value)
    for name in (
        "CHURN_SERVING_DATASETS",
        "CHURN_API_KEYS",
        "CHURN_MAX_IDS_PER_REQUEST",
        "CHURN_OFFLINE_TABLE",
    ):
        assert name in message
    assert "16 characters" in message
