"""A customer's online state and the event features at T derived from it, as ``fct_features``.

The state is what the dbt models aggregate, kept per customer:

* **daily tiles** (``int_daily_tiles``): per day, distinct purchase orders, purchase lines,
  revenue, return/cancellation lines and their value, money in thousandths. Every day is kept:
  lifetime features sum all purchase days (``int_purchase_history``), and a retail customer
  has a few hundred days at most.
* **product days**: the products bought on each day, for the days a window can still reach.
  ``fct_features`` counts a product in [T - w, T) when its last purchase before T falls there
  (``int_product_days``), which is the same as "bought at least once in [T - w, T)": the set
  of products bought in the window.

:func:`derive` computes every feature at any month start T from the tiles before T, so a state
that already holds later events still gives the exact features at an earlier T. The formulas
are those of the SQL, operation for operation (the same float divisions in the same order),
so online and offline values agree to the last bit wherever the inputs do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise

import polars as pl

from churn_assets.lib.datasets import DatasetSpec
from churn_assets.lib.features_registry import feature_set
from churn_assets.lib.stream.events import StreamEvent, day_number, day_of, to_milli

MEASURES = b"olrnv"
"""Hash field prefix of each tile measure, in :data:`Tile` order: orders, lines, revenue,
returns (lines), return value; ``p`` prefixes a product day (``p<day>:<product_id>``)."""
SEQUENCE = b"#"
"""Hash field counting the events applied to the customer: a score derived from an older
count is superseded (another worker has applied newer events meanwhile)."""
ORDERS, LINES, REVENUE, RETURNS, RETURN_VALUE = range(5)
PRODUCT = ord("p")
Tile = list[int]
Value = int | float | None


@dataclass
class CustomerState:
    """One customer's tiles (day number -> five integer measures) and product days."""

    tiles: dict[int, Tile] = field(default_factory=dict)
    products: dict[int, set[str]] = field(default_factory=dict)
    sequence: int = 0

    @classmethod
    def from_hash(cls, reply: Sequence[bytes] | Mapping[bytes, bytes]) -> CustomerState:
        """Parse a customer hash as ``HGETALL`` returns it (flat list or mapping)."""
        items: Iterable[tuple[bytes, bytes]]
        if isinstance(reply, Mapping):
            items = reply.items()
        else:
            flat = iter(reply)
            items = zip(flat, flat, strict=True)
        state = cls()
        for name, value in items:
            if name == SEQUENCE:
                state.sequence = int(value)
                continue
            if name[0] == PRODUCT:
                day, _, product = name[1:].partition(b":")
                state.products.setdefault(int(day), set()).add(product.decode())
                continue
            tile = state.tiles.setdefault(int(name[1:]), [0, 0, 0, 0, 0])
            tile[MEASURES.index(name[0])] += int(value)
        return state

    @property
    def newest_day(self) -> int | None:
        return max(self.tiles, default=None)

    def add(self, event: StreamEvent, new_order: bool) -> None:
        """Apply one counted event, as the Redis script does (the reference for unit tests)."""
        tile = self.tiles.setdefault(event.day, [0, 0, 0, 0, 0])
        milli = to_milli(event.amount)
        if event.is_purchase:
            tile[ORDERS] += int(new_order)
            tile[LINES] += 1
            tile[REVENUE] += milli
            if event.product_id is not None:
                self.products.setdefault(event.day, set()).add(event.product_id)
        else:
            tile[RETURNS] += 1
            tile[RETURN_VALUE] -= milli


def tile_fields(day: int, tile: Sequence[int]) -> dict[str, int]:
    """The hash fields of one tile (zero measures are left out, as HINCRBY never wrote them)."""
    return {f"{chr(MEASURES[i])}{day}": value for i, value in enumerate(tile) if value}


def product_field(day: int, product_id: str) -> str:
    return f"p{day}:{product_id}"


@dataclass(frozen=True)
class Knobs:
    """What derivation needs from the declaration and the data: windows, horizon, active
    window, the first day of the data (left-censoring) and the feature order."""

    windows: tuple[int, ...]
    long_windows: tuple[int, ...]
    horizon: int
    active_window: int
    first_day: int
    names: tuple[str, ...]
    dtypes: tuple[str, ...]

    @classmethod
    def of(cls, spec: DatasetSpec, first_day: date) -> Knobs:
        ev = spec.ev
        features = feature_set(spec).features
        return cls(
            windows=tuple(ev.windows),
            long_windows=tuple(ev.long_windows),
            horizon=ev.label_horizon_days,
            active_window=ev.active_window_days,
            first_day=day_number(first_day),
            names=tuple(f.name for f in features),
            dtypes=tuple(f.dtype for f in features),
        )

    @property
    def widest(self) -> int:
        return max(self.windows + self.long_windows)

    @property
    def product_days(self) -> int:
        """How far back product days matter: the longest window with distinct products."""
        return max(self.windows)


def _month(day: int) -> tuple[int, int]:
    calendar = day_of(day)
    return calendar.year, calendar.month


def derive(state: CustomerState, t: date, knobs: Knobs) -> dict[str, Value] | None:
    """Every event feature at observation date ``t`` (a month start), from tiles before ``t``;
    None without a purchase before ``t`` (``fct_features`` has no row then)."""
    end = day_number(t)
    purchase_days = sorted(d for d, tile in state.tiles.items() if d < end and tile[ORDERS])
    if not purchase_days:
        return None
    has_year = 365 in knobs.long_windows
    start = {w: end - w for w in knobs.windows + knobs.long_windows + (knobs.widest, 365)}
    sums = {w: [0, 0, 0, 0, 0] for w in knobs.windows}
    long_sums = {w: [0, 0] for w in knobs.long_windows}
    months: set[tuple[int, int]] = set()
    prior_year = 0
    lifetime = [0, 0, 0]
    for day, tile in state.tiles.items():
        if day >= end:
            continue
        if tile[ORDERS]:
            lifetime[0] += tile[ORDERS]
            lifetime[1] += tile[LINES]
            lifetime[2] += tile[REVENUE]
        if day < start[knobs.widest]:
            continue
        for w, total in sums.items():
            if day >= start[w]:
                for i in range(5):
                    total[i] += tile[i]
        for w, pair in long_sums.items():
            if day >= start[w]:
                pair[0] += tile[ORDERS]
                pair[1] += tile[REVENUE]
        if tile[ORDERS]:
            months.add(_month(day))
        if day < end - 365 + knobs.horizon and (not has_year or day >= start[365]):
            prior_year += tile[ORDERS]

    def known(w: int, value: Value) -> Value:
        """``known_since``: NULL when the window starts before the first day of the data."""
        return None if start.get(w, end - w) < knobs.first_day else value

    out: dict[str, Value] = {}
    for w in knobs.windows:
        orders, lines, revenue, returns, return_value = sums[w]
        products: set[str] = set()
        for day, bought in state.products.items():
            if start[w] <= day < end:
                products |= bought
        out |= {
            f"orders_{w}d": known(w, orders),
            f"lines_{w}d": known(w, lines),
            f"revenue_{w}d": known(w, revenue / 1000),
            f"returns_{w}d": known(w, returns),
            f"return_value_{w}d": known(w, return_value / 1000),
            f"distinct_products_{w}d": known(w, len(products)),
        }
    first, last = purchase_days[0], purchase_days[-1]
    recency, tenure = end - last, end - first
    gaps = [b - a for a, b in pairwise(purchase_days)]
    n_gaps = len(gaps)
    gap_sum = float(last - first)
    gap_sq = float(sum(g * g for g in gaps))
    mean_gap = gap_sum / n_gaps if n_gaps > 0 else float(tenure)
    lifetime_orders, lifetime_lines = lifetime[0], float(lifetime[1])
    lifetime_revenue = lifetime[2] / 1000
    w0, w1 = knobs.windows[0], knobs.windows[1]
    out |= {
        "recency_days": recency,
        "tenure_days": tenure,
        "lifetime_orders": lifetime_orders,
        "lifetime_revenue": lifetime_revenue,
        f"orders_trend_{w0}d": _trend(out[f"orders_{w0}d"], out[f"orders_{w1}d"]),
        f"revenue_trend_{w0}d": _trend(out[f"revenue_{w0}d"], out[f"revenue_{w1}d"]),
        "interpurchase_mean_days": mean_gap,
        "interpurchase_std_days": (
            math.sqrt(max(gap_sq / n_gaps - (gap_sum / n_gaps) * (gap_sum / n_gaps), 0.0))
            if n_gaps > 0
            else 0.0
        ),
    }
    for w, (orders, revenue) in long_sums.items():
        out[f"orders_{w}d"] = known(w, orders)
        out[f"revenue_{w}d"] = known(w, revenue / 1000)
    out[f"active_months_{knobs.widest}d"] = known(knobs.widest, len(months))
    if has_year:
        out["orders_prior_year_horizon"] = known(365, prior_year)
    out |= {
        "observation_month": t.month,
        "max_gap_days": max(gaps, default=0),
        f"n_lapses_{knobs.active_window}d": sum(g > knobs.active_window for g in gaps),
        "recency_to_mean_gap": recency / mean_gap,
        "avg_order_value": lifetime_revenue / lifetime_orders,
        "avg_lines_per_order": lifetime_lines / lifetime_orders,
        "avg_line_value": lifetime_revenue / lifetime_lines,
    }
    return {name: out[name] for name in knobs.names}


def derive_frame(states: Mapping[str, CustomerState], t: date, knobs: Knobs) -> pl.DataFrame:
    """Features at ``t`` of every customer with a purchase before ``t``, typed as the offline
    table (the registry's integer and double columns), ids as text."""
    rows = []
    for customer_id, state in states.items():
        values = derive(state, t, knobs)
        if values is not None:
            rows.append({"customer_id": customer_id, "observation_date": t, **values})
    schema: dict[str, pl.DataType] = {"customer_id": pl.String(), "observation_date": pl.Date()}
    schema |= {name: _POLARS[dtype] for name, dtype in zip(knobs.names, knobs.dtypes, strict=True)}
    return pl.DataFrame(rows, schema=schema)


_POLARS: dict[str, pl.DataType] = {"integer": pl.Int32(), "double": pl.Float64()}


def _trend(recent: Value, window: Value) -> Value:
    """``(x_w0 + 1) / (x_w1 - x_w0 + 1)``: NULL when either window is left-censored."""
    if recent is None or window is None:
        return None
    return (recent + 1.0) / (window - recent + 1.0)
