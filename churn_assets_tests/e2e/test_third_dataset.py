"""A user's own event log, in another shape, from a new declaration to features, labels, a
trained and registered model and drift reports, with no code change.

The declaration is the one in docs/data_contract.md (read from the Markdown), pointed at a
generated Acme export: other column names, timestamps with a UTC offset in another timezone, no
order id, a type column with the shop's own words, euros, and dates in 2022-2023.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pytest
import yaml  # type: ignore[import-untyped]

from churn_assets.cli import ON_REQUEST_GROUPS
from churn_assets.definitions import build_definitions
from churn_assets.lib.datasets import load_declaration
from churn_assets.partitions import partitions_name
from churn_assets_tests.conftest import settings_for
from churn_assets_tests.docs_examples import example
from churn_assets_tests.e2e.acme import write_acme
from churn_assets_tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e_acme")]
FAST = {"n_trials": 3, "max_rounds": 80}


def test_a_declared_dataset_runs_the_whole_graph(tmp_path: Path, redis_server: RedisServer) -> None:
    declaration = example("declaration: acme")
    export = write_acme(tmp_path / "acme_export")
    declaration["attributes"]["files"] = [str(export.parent / "*.csv")]
    folder = tmp_path / "datasets" / "acme"
    folder.mkdir(parents=True)
    (folder / "defs.yaml").write_text(yaml.safe_dump(declaration))
    spec = load_declaration(folder / "defs.yaml")

    settings = settings_for(tmp_path / "home", redis_url=redis_server.url)
    defs = build_definitions(settings, [spec])
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    partitioned = [k for k in keys if graph.get(k).partitions_def is not None]
    assert all(k.to_user_string().startswith("acme_") for k in keys)
    main = dg.define_asset_job(
        "acme_main",
        selection=dg.AssetSelection.all()
        - dg.AssetSelection.assets(*partitioned)
        - dg.AssetSelection.groups(*ON_REQUEST_GROUPS),
    )
    run_config = {
        "ops": {
            "acme_xgboost_model": {"config": FAST},
            "acme_deep_model": {"config": {"n_trials": 1, "max_epochs": 10}},
        }
    }
    with dg.instance_for_test() as instance:
        job = dg.Definitions.merge(defs, dg.Definitions(jobs=[main])).resolve_job_def("acme_main")
        assert job.execute_in_process(instance=instance, run_config=run_config).success
        months = instance.get_dynamic_partitions(partitions_name(spec))
        # the first month start with 90 days of history after the first event (2022-01-03)
        assert months[0] == "2022-05-01" and months[-1] == "2024-01-01"
        monthly = dg.Definitions.merge(
            defs, dg.Definitions(jobs=[dg.define_asset_job("acme_months", selection=partitioned)])
        ).resolve_job_def("acme_months")
        for month in ("2023-06-01", "2023-09-01"):
            assert monthly.execute_in_process(instance=instance, partition_key=month).success
        training_set = instance.get_latest_materialization_event(dg.AssetKey("acme_training_set"))
        assert training_set is not None and training_set.asset_materialization is not None
        left_out = training_set.asset_materialization.metadata["features_left_out"].value
        reasons = {r.data["feature"]: r.data["reason"] for r in left_out.records}
        # no order id: every row is its own order, so the line counts duplicate the order counts
        assert reasons["lines_30d"] == "identical to orders_30d on every row"

    con = duckdb.connect(settings.duckdb_path, read_only=True)
    try:
        types = dict(
            con.execute("SELECT event_type, count(*) FROM acme_raw.events GROUP BY 1").fetchall()
        )
        assert set(types) == {"purchase", "return"}
        first = con.execute("SELECT min(event_ts) FROM acme_raw.events").fetchone()
        labels = con.execute(
            "SELECT count(*), count(churned), sum(churned) FROM acme_features.fct_labels"
        ).fetchone()
        scored = con.execute(
            "SELECT observation_date, count(*) FROM acme_monitoring.scores GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    # "2022-01-03T06:00:59+01:00" is 06:00:59 in Paris: wall-clock time of the declared timezone
    assert first is not None and str(first[0]) == "2022-01-03 06:00:59"
    assert labels is not None and labels[1] > 500 and 0 < labels[2] < labels[1]
    assert [str(d) for d, _ in scored] == ["2023-06-01", "2023-09-01"]
    assert all(n > 20 for _, n in scored)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    champion = mlflow.MlflowClient().get_model_version_by_alias("churn-acme", "champion")
    assert champion.tags["training_set.dataset"] == "acme"
    reports = sorted((Path(settings.reports_dir) / "acme" / "drift").glob("*.html"))
    assert [p.name for p in reports] == ["drift_2023-06-01.html", "drift_2023-09-01.html"]
