"""Tile updates and window derivation against hand-computed values (no Redis)."""

from __future__ import annotations

import statistics
from datetime import date

import pytest

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream.events import MalformedEvent, decode, encode, to_milli
from churn_assets.lib.stream.tiles import CustomerState, Knobs, derive, derive_frame
from churn_assets_tests.streaming.fixtures import (
    CUSTOMER_1,
    CUSTOMER_9,
    FIXTURE_FIRST_DAY,
    event,
    reference_state,
)

T = date(2011, 4, 1)


@pytest.fixture(scope="module")
def knobs(specs: dict[str, DatasetSpec]) -> Knobs:
    return Knobs.of(specs["retail"], date.fromisoformat(FIXTURE_FIRST_DAY))


def test_window_edges_at_midnight(knobs: Knobs) -> None:
    """T - 30d 00:00 is in the 30-day window, T - 30d - 1 min is not, T itself is in none,
    T - 90d - 1 min is in no window; the cancellation counts as a return: the values the
    dbt fixture asserts for the same customer."""
    got = derive(reference_state(CUSTOMER_1), T, knobs)
    assert got is not None
    gaps = [31, 29, 1]
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
    assert list(got) == list(knobs.names)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_long_windows_and_last_years_horizon(knobs: Knobs) -> None:
    """T - 365d and T - 180d are inside their windows, a minute before is not; last year's
    label horizon [T - 365d, T - 275d) holds 2010-04-01 and 2010-06-29 23:59."""
    got = derive(reference_state(CUSTOMER_9), T, knobs)
    assert got is not None
    gaps = [1, 89, 1, 94, 1]
    expected = {
        "orders_180d": 1, "revenue_180d": 32.0, "orders_365d": 5, "revenue_365d": 62.0,
        "active_months_365d": 3, "orders_prior_year_horizon": 2,
        "orders_90d": 0, "recency_days": 180, "observation_month": 4,
        "max_gap_days": 94, "n_lapses_90d": 1,
        "recency_to_mean_gap": 180 / statistics.mean(gaps),
        "lifetime_orders": 6, "avg_order_value": 63 / 6,
        "avg_lines_per_order": 1.0, "avg_line_value": 63 / 6,
    }  # fmt: skip
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_later_events_do_not_move_an_earlier_t(knobs: Knobs) -> None:
    """The state may already hold events at or after T: the features at T ignore them."""
    later = (
        *CUSTOMER_1,
        event("110", "E", 5, "2011-04-02 09:00", 3.0),
        event("C111", "A", -1, "2011-05-01 00:00", 1.0),
    )
    assert derive(reference_state(later), T, knobs) == derive(reference_state(CUSTOMER_1), T, knobs)


def test_orders_returns_and_products(knobs: Knobs) -> None:
    """Lines of one order count one order per day (an order spanning two days counts on each);
    a return is not an order; a product bought twice in a window counts once; a product last
    bought before the window does not count."""
    events = [
        event("200", "A", 2, "2011-03-20 10:00", 1.5),
        event("200", "B", 1, "2011-03-20 10:00", 4.0),
        event("200", "A", 1, "2011-03-21 08:00", 1.5),
        event("201", "A", 1, "2011-03-25 12:00", 1.5),
        event("202", "Z", 1, "2010-12-01 12:00", 9.0),
        event("202", "Z", -1, "2011-03-26 12:00", 9.0),
    ]
    got = derive(reference_state(events), T, knobs)
    assert got is not None
    assert got["orders_30d"] == 3  # 200 on two days, 201
    assert got["lines_30d"] == 4
    assert got["revenue_30d"] == pytest.approx(3.0 + 4.0 + 1.5 + 1.5)
    assert (got["returns_30d"], got["return_value_30d"]) == (1, 9.0)
    assert got["distinct_products_30d"] == 2  # A, B (Z only returned in the window)
    assert got["distinct_products_90d"] == 2  # Z was last bought before the 90-day window
    assert got["lifetime_orders"] == 4 and got["orders_180d"] == 4


def test_returns_only_customer_has_no_features(knobs: Knobs) -> None:
    state = reference_state([event("C600", "A", -1, "2011-02-01 10:00", 5.0, "6")])
    assert derive(state, T, knobs) is None
    frame = derive_frame({"6": state, "1": reference_state(CUSTOMER_1)}, T, knobs)
    assert frame["customer_id"].to_list() == ["1"]


def test_left_censored_windows_are_null(specs: dict[str, DatasetSpec]) -> None:
    """A window [T - w, T) starting before the first day of the data is unknown (NULL), one
    starting on it is known; the 30-day trend needs both of its windows."""
    state = reference_state(CUSTOMER_1)
    knobs = Knobs.of(specs["retail"], date(2011, 1, 31))  # = T - 60d
    got = derive(state, T, knobs)
    assert got is not None
    assert got["orders_60d"] == 3 and got["orders_trend_30d"] == pytest.approx(2 / 3)
    assert got["orders_90d"] is None and got["distinct_products_90d"] is None
    assert got["orders_180d"] is None and got["active_months_365d"] is None
    assert got["orders_prior_year_horizon"] is None
    later = derive(state, T, Knobs.of(specs["retail"], date(2011, 2, 1)))
    assert later is not None
    assert later["orders_60d"] is None and later["orders_trend_30d"] is None
    assert later["orders_30d"] == 1 and later["lifetime_orders"] == 4  # never censored
    censored = feature_set(specs["retail"]).left_censored
    assert {n for n, v in later.items() if v is None} <= censored


def test_hash_round_trip() -> None:
    """The state parsed from Redis hash fields equals the state the fields were written from."""
    state = reference_state(CUSTOMER_1)
    fields: dict[bytes, bytes] = {}
    for day, tile in state.tiles.items():
        for i, value in enumerate(tile):
            if value:
                fields[f"{'olrnv'[i]}{day}".encode()] = str(value).encode()
    for day, products in state.products.items():
        fields |= {f"p{day}:{p}".encode(): b"1" for p in products}
    flat = [item for pair in fields.items() for item in pair]
    assert CustomerState.from_hash(fields) == state == CustomerState.from_hash(flat)


def test_money_as_the_decimal_cast() -> None:
    """DuckDB's DOUBLE -> DECIMAL(18, 3): half away from zero on the shortest decimal text."""
    assert [to_milli(x) for x in (2.95 * 6, 1.0025, -1.0025, 0.0005, 0.00625)] == [
        17700,
        1003,
        -1003,
        1,
        6,
    ]


def test_entry_codec_and_malformed_entries() -> None:
    original = event("300", None, 3, "2011-05-06 07:08:09", 1.25)
    fields = encode({**vars(original), "unit_price": 1.25, "segment_country": "France"})
    assert "product_id" not in fields  # nulls are left out
    assert decode(fields) == original
    assert decode({k.encode(): v.encode() for k, v in fields.items()}) == original
    with pytest.raises(MalformedEvent, match="missing field"):
        decode({"event_id": "x"})
    with pytest.raises(MalformedEvent, match="event_type"):
        decode({**fields, "event_type": "refund"})
    with pytest.raises(MalformedEvent, match="unparsable"):
        decode({**fields, "quantity": "three"})
    with pytest.raises(MalformedEvent, match="finite"):
        decode({**fields, "amount": "inf"})


def test_staging_rules() -> None:
    assert event("1", "A", 1, "2011-01-01 10:00", 1.0, None).drop_reason() == "no_customer"
    assert event("1", "A", 0, "2011-01-01 10:00", 1.0).drop_reason() == "zero_quantity"
    excluded = event("A1", "A", 1, "2011-01-01 10:00", 1.0, exclude_reason="bad_debt_adjustment")
    assert excluded.drop_reason() == "bad_debt_adjustment"
    assert event("1", "A", 1, "2011-01-01 10:00", 1.0).drop_reason() is None


def test_any_declared_knobs_give_the_declared_features(specs: dict[str, DatasetSpec]) -> None:
    """Other windows, horizon and active window: the derived names are the registry's, in its
    order, and the windows follow the knobs (no year window: no prior-year feature)."""
    retail = specs["retail"]
    events = retail.ev.model_copy(
        update={
            "windows": [7, 14],
            "long_windows": [35],
            "label_horizon_days": 30,
            "active_window_days": 20,
        }
    )
    spec = retail.model_copy(update={"name": "weekly", "events": events})
    knobs = Knobs.of(spec, date(2010, 1, 1))
    got = derive(reference_state(CUSTOMER_1), T, knobs)
    assert got is not None
    assert tuple(got) == feature_set(spec).names
    assert "orders_prior_year_horizon" not in got and "n_lapses_20d" in got
    # [T - 35d, T) = [2011-02-25, 2011-04-01): the purchases of 03-01 23:59 and 03-02
    assert (got["orders_7d"], got["orders_14d"], got["orders_35d"]) == (0, 0, 2)
    assert got["returns_14d"] == 0 and got["active_months_35d"] == 1
    assert got["n_lapses_20d"] == 2  # gaps of 31 and 29 days exceed 20
