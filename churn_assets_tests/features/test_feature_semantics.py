"""Point-in-time semantics of the retail features and labels, on the hand-built fixture."""

from __future__ import annotations

import statistics
from datetime import date, timedelta
from pathlib import Path

import pytest

from churn_assets.lib.datasets import load_declarations
from churn_assets.lib.features_registry import feature_set
from churn_assets_tests.features import fixtures
from churn_assets_tests.features.conftest import query

# One xdist worker builds the fixture databases once for every test of this folder.
pytestmark = pytest.mark.xdist_group("features_dbt")

FEATURES = list(feature_set(load_declarations()["retail"]).names)
KNOWN = list(feature_set(load_declarations()["retail"]).always_known)


def _features(db: Path, customer_id: int, observation_date: str) -> dict[str, object]:
    rows = query(
        db,
        f"select {', '.join(FEATURES)} from retail_features.fct_features "
        f"where customer_id = '{customer_id}' and observation_date = date '{observation_date}'",
    )
    assert len(rows) == 1
    return dict(zip(FEATURES, rows[0], strict=True))


def _labels(db: Path) -> dict[tuple[int, date], int | None]:
    return {
        (int(cid), day): churned
        for cid, day, churned in query(
            db, "select customer_id, observation_date, churned from retail_features.fct_labels"
        )
    }


def test_window_edges(base_db: Path) -> None:
    """T = 2011-04-01: an event at T-30d is in the 30-day window, one at T in none, one at
    T-90d-1min in none; hand-computed values for every feature."""
    got = _features(base_db, 1, "2011-04-01")
    gaps = [31, 29, 1]  # purchase days 12-31, 01-31, 03-01, 03-02
    expected = {
        "orders_30d": 1, "lines_30d": 1, "revenue_30d": 10.0,
        "returns_30d": 1, "return_value_30d": 10.0, "distinct_products_30d": 1,
        "orders_60d": 3, "lines_60d": 3, "revenue_60d": 17.0,
        "returns_60d": 1, "return_value_60d": 10.0, "distinct_products_60d": 2,
        "orders_90d": 3, "lines_90d": 3, "revenue_90d": 17.0,
        "returns_90d": 1, "return_value_90d": 10.0, "distinct_products_90d": 2,
        "recency_days": 30, "tenure_days": 91,
        "lifetime_orders": 4, "lifetime_revenue": 27.0,
        "orders_trend_30d": 2 / 3, "revenue_trend_30d": 11 / 8,
        "interpurchase_mean_days": statistics.mean(gaps),
        "interpurchase_std_days": statistics.pstdev(gaps),
        "orders_180d": 4, "revenue_180d": 27.0, "orders_365d": 4, "revenue_365d": 27.0,
        "active_months_365d": 3, "orders_prior_year_horizon": 0, "observation_month": 4,
        "max_gap_days": 31, "n_lapses_90d": 0, "recency_to_mean_gap": 30 / statistics.mean(gaps),
        "avg_order_value": 27 / 4, "avg_lines_per_order": 1.0, "avg_line_value": 27 / 4,
    }  # fmt: skip
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_long_window_edges(base_db: Path) -> None:
    """T = 2011-04-01: T - 365d and T - 180d are inside their windows, a minute before is not;
    last year's label horizon [T - 365d, T - 275d) holds 2010-04-01 and 2010-06-29 23:59."""
    got = _features(base_db, 9, "2011-04-01")
    gaps = [1, 89, 1, 94, 1]  # purchase days 03-31, 04-01, 06-29, 06-30, 10-02, 10-03 (2010)
    expected = {
        "orders_180d": 1, "revenue_180d": 32.0,
        "orders_365d": 5, "revenue_365d": 62.0,
        "active_months_365d": 3, "orders_prior_year_horizon": 2,
        "orders_90d": 0, "recency_days": 180, "observation_month": 4,
        "max_gap_days": 94, "n_lapses_90d": 1,
        "recency_to_mean_gap": 180 / statistics.mean(gaps),
        "lifetime_orders": 6, "avg_order_value": 63 / 6,
        "avg_lines_per_order": 1.0, "avg_line_value": 63 / 6,
    }  # fmt: skip
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name


def test_single_purchase_day_defaults(base_db: Path) -> None:
    """One purchase day: no gap yet, mean falls back to the tenure and std to 0 (never NULL)."""
    got = _features(base_db, 2, "2011-02-01")
    assert got["tenure_days"] == got["recency_days"] == 17
    assert got["interpurchase_mean_days"] == 17.0
    assert got["interpurchase_std_days"] == 0.0
    assert got["orders_30d"] == 1 and got["lines_30d"] == 2 and got["revenue_30d"] == 11.0
    assert got["distinct_products_30d"] == 2


def test_labels_and_horizon_edges(base_db: Path) -> None:
    labels = _labels(base_db)
    assert labels[(2, date(2011, 2, 1))] == 1
    assert labels[(2, date(2011, 3, 1))] == 1
    assert labels[(3, date(2011, 1, 1))] == 1  # next purchase exactly at T + 90d: outside
    assert labels[(3, date(2011, 2, 1))] == 0
    assert labels[(4, date(2011, 1, 1))] == 0  # next purchase at T + 90d - 1 minute: inside
    assert labels[(1, date(2011, 3, 1))] == 0
    assert (2, date(2011, 5, 1)) not in labels  # inactive: last purchase before T - 90d


def test_immature_labels_are_null(base_db: Path) -> None:
    """Last event 2011-06-15 12:00: horizons of T >= 2011-04-01 end after it."""
    rows = query(
        base_db,
        "select observation_date, count(*), count(churned), bool_and(not is_mature) "
        "from retail_features.fct_labels group by 1 order by 1",
    )
    for observation_date, n, n_labelled, all_immature in rows:
        if observation_date >= date(2011, 4, 1):
            assert n_labelled == 0 and all_immature, observation_date
        else:
            assert n_labelled == n, observation_date
    spine = query(base_db, "select max(observation_date) from retail_features.fct_training_spine")
    assert spine == [(date(2011, 3, 1),)]


def test_keys_unique_and_features_complete(base_db: Path) -> None:
    (n, n_keys) = query(
        base_db,
        "select count(*), count(distinct (customer_id, observation_date)) "
        "from retail_features.fct_features",
    )[0]
    assert n == n_keys > 0
    nulls = query(
        base_db,
        "select "
        + ", ".join(f"count(*) - count({name})" for name in KNOWN)
        + " from retail_features.fct_features",
    )[0]
    assert dict(zip(KNOWN, nulls, strict=True)) == dict.fromkeys(KNOWN, 0)


def test_windows_reaching_before_the_data_are_unknown_not_zero(base_db: Path) -> None:
    """The fixture's first event is 2010-03-31 23:59. A window [T - w, T) starting before
    2010-03-31 is NULL; one starting on that day or later is a number (0 when empty)."""
    censored = [f for f in FEATURES if f not in KNOWN]
    assert {
        "orders_365d",
        "revenue_180d",
        "active_months_365d",
        "orders_prior_year_horizon",
    } <= set(censored)
    first_day = date(2010, 3, 31)
    windows = {
        f: int(f.rsplit("_", 1)[-1][:-1]) for f in censored if f.endswith("d") and f[-2].isdigit()
    }
    windows |= {"orders_prior_year_horizon": 365, "orders_trend_30d": 60, "revenue_trend_30d": 60}
    rows = query(
        base_db,
        f"select observation_date, {', '.join(windows)} from retail_features.fct_features",
    )
    for observation_date, *values in rows:
        for (name, days), value in zip(windows.items(), values, strict=True):
            reaches_before = observation_date - timedelta(days=days) < first_day
            assert (value is None) == reaches_before, (name, observation_date, value)
    # customer 9 at 2011-04-01: the 365-day window starts on 2010-04-01, inside the data
    assert _features(base_db, 9, "2011-04-01")["orders_365d"] == 5


def test_rows_exist_exactly_where_history_exists(base_db: Path) -> None:
    rows = {
        (int(cid), day)
        for cid, day in query(
            base_db, "select customer_id, observation_date from retail_features.fct_features"
        )
    }
    assert not any(cid == 6 for cid, _ in rows)  # returns only: no purchase history
    assert (2, date(2011, 1, 1)) not in rows and (2, date(2011, 2, 1)) in rows
    assert (2, date(2011, 6, 1)) in rows  # inactive but with history: still has features
    assert (1, date(2011, 1, 1)) in rows  # purchase at 2010-12-31 23:59 is before T
    dropped = dict(query(base_db, "select reason, n_rows from retail_staging.stg_dropped_events"))
    assert dropped == {"missing_customer": 1, "bad_debt_adjustment": 0, "zero_quantity": 0}


def test_latest_view_is_newest_observation(base_db: Path) -> None:
    rows = query(base_db, "select distinct observation_date from retail_features.features_latest")
    assert rows == [(date.fromisoformat(fixtures.OBSERVATION_END),)]


def test_future_events_do_not_leak_into_features(base_db: Path, perturbed_db: Path) -> None:
    """Events changed/added at or after T* leave every feature row at T <= T* byte-identical."""
    sql = (
        f"select customer_id, observation_date, {', '.join(FEATURES)} "
        f"from retail_features.fct_features where observation_date <= date '{fixtures.LEAKAGE_T}' "
        "order by customer_id, observation_date"
    )
    assert query(base_db, sql) == query(perturbed_db, sql)
    # ...while later observation dates do see them.
    assert _features(base_db, 1, "2011-04-01") != _features(perturbed_db, 1, "2011-04-01")


def test_events_inside_horizon_only_change_labels(base_db: Path, perturbed_db: Path) -> None:
    """Customer 2's purchase at T* flips exactly its labels whose horizon covers T*."""
    before, after = _labels(base_db), _labels(perturbed_db)
    cutoff = date.fromisoformat(fixtures.LEAKAGE_T)
    changed = {key for key in before if key[1] <= cutoff and before[key] != after.get(key)}
    assert changed == {(2, date(2011, 2, 1)), (2, date(2011, 3, 1))}
    assert after[(2, date(2011, 2, 1))] == after[(2, date(2011, 3, 1))] == 0


def test_telco_features(base_db: Path) -> None:
    rows = query(
        base_db,
        "select customer_id, observation_date, tenure_bucket, charge_per_tenure_month, "
        "monthly_charges_vs_contract_median, n_addon_services, n_security_support_services, "
        "n_streaming_services, contract_months, is_automatic_payment, churned "
        "from telco_features.fct_snapshot_features order by customer_id",
    )
    snapshot = date(2019, 9, 30)
    assert rows == [
        ("0001-AAAAA", snapshot, "00-12", 50.0, pytest.approx(50 / 60), 0, 0, 0, 1, 0, 0),
        ("0002-BBBBB", snapshot, "00-12", 70.0, pytest.approx(70 / 60), 2, 2, 0, 1, 0, 1),
        ("0003-CCCCC", snapshot, "25-48", 80.0, 1.0, 4, 4, 0, 12, 1, 0),
        ("0004-DDDDD", snapshot, "49-72", 20.0, 1.0, 0, 0, 0, 24, 1, 0),
    ]


def test_the_label_horizon_moves_labels_features_and_words_together(
    base_db: Path, horizon60_db: Path
) -> None:
    """One knob, one place: a 60-day horizon moves the labels (dbt), last year's horizon window
    (dbt and its declared description), the label definition (provenance, MLflow, docs) and the
    dbt vars; the 90-day build is untouched."""
    from churn_assets.lib.features_dbt import dbt_vars
    from churn_assets_tests.features.conftest import with_horizon

    spec = load_declarations()["retail"]
    short = with_horizon(spec, 60)
    ends = query(
        horizon60_db,
        "select distinct label_horizon_end - observation_date from retail_features.fct_labels",
    )
    assert ends == [(60,)]
    assert query(
        base_db,
        "select distinct label_horizon_end - observation_date from retail_features.fct_labels",
    ) == [(90,)]
    # customer 4 buys again at 2011-03-31 23:59, 89 days after 2011-01-01: retained at 90, churned at 60
    assert _labels(base_db)[(4, date(2011, 1, 1))] == 0
    assert _labels(horizon60_db)[(4, date(2011, 1, 1))] == 1
    # last year's label horizon is [T - 365d, T - 365d + h): customer 9 at 2011-04-01 has
    # purchases at 2010-04-01 and 2010-06-29 23:59 (2 in 90 days) but only the first in 60 days
    assert _features(base_db, 9, "2011-04-01")["orders_prior_year_horizon"] == 2
    assert _features(horizon60_db, 9, "2011-04-01")["orders_prior_year_horizon"] == 1
    described = feature_set(short).get("orders_prior_year_horizon").description
    assert "[T - 365d, T - 305d)" in described and "60-day" in described
    assert "[T, T + 60d)" in short.label_definition()
    assert dbt_vars(short)["label_horizon_days"] == 60
    assert feature_set(short).registry_hash != feature_set(spec).registry_hash
