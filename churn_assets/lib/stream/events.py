"""One event as a Redis stream entry, and the staging rules that decide whether it counts.

An entry carries the raw contract's canonical columns (``events_columns(spec)``) as text, nulls
left out, so a stream entry and a row of ``<ds>_raw.events`` are the same record and
``event_id`` (the contract's content key) names it in both. Decoding is strict: an entry that
does not parse is a dead letter with the reason, never a guess.

Money is counted in thousandths (integers): staging casts ``amount`` to ``DECIMAL(18, 3)`` and
sums decimals, and integer sums are just as exact and order-independent, so a tile built from a
stream equals the one dbt builds from the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from churn_assets.lib.contracts.types import EVENT_TYPES, NUMERIC_LIMIT

EPOCH = date(1970, 1, 1)
REQUIRED_FIELDS = ("event_id", "event_ts", "amount", "event_type")
_MILLI = Decimal("0.001")


class MalformedEvent(ValueError):
    """A stream entry that is not a valid event (the message is the dead letter's reason)."""


def day_number(day: date) -> int:
    """Days since 1970-01-01: tiles are keyed by this integer (compact, sortable, cheap)."""
    return (day - EPOCH).days


def day_of(number: int) -> date:
    return EPOCH + timedelta(days=number)


def to_milli(amount: float) -> int:
    """``CAST(amount AS DECIMAL(18, 3))`` as DuckDB does it, in thousandths.

    DuckDB rounds the shortest decimal text of the double half away from zero (``1.0025`` is
    ``1.003`` although the nearest double is below it); ``Decimal(repr(x))`` is that text.
    """
    return int(Decimal(repr(amount)).quantize(_MILLI, rounding=ROUND_HALF_UP) * 1000)


@dataclass(frozen=True)
class StreamEvent:
    """The fields of a canonical event that features read, typed."""

    event_id: str
    customer_id: str | None
    event_ts: datetime
    order_id: str | None
    product_id: str | None
    quantity: int | None
    amount: float
    event_type: str
    exclude_reason: str | None

    @property
    def day(self) -> int:
        return day_number(self.event_ts.date())

    @property
    def is_purchase(self) -> bool:
        return self.event_type == "purchase"

    def drop_reason(self) -> str | None:
        """Why staging (``stg_events.sql``) leaves this event out of features, or None."""
        if not self.customer_id:
            return "no_customer"
        if self.exclude_reason:
            return self.exclude_reason
        if self.quantity == 0:
            return "zero_quantity"
        return None


def encode(row: Mapping[str, Any]) -> dict[str, str]:
    """A canonical row (``events_columns`` names) as stream entry fields; nulls are left out."""
    fields: dict[str, str] = {}
    for name, value in row.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            fields[name] = value.isoformat(sep=" ")
        elif isinstance(value, float):
            fields[name] = repr(value)
        else:
            fields[name] = str(value)
    return fields


def _text(fields: Mapping[Any, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        value = fields.get(name.encode())
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def decode(fields: Mapping[Any, Any]) -> StreamEvent:
    """A stream entry (bytes or text fields) as an event; :class:`MalformedEvent` says what is
    wrong with it."""
    missing = [name for name in REQUIRED_FIELDS if not _text(fields, name)]
    if missing:
        raise MalformedEvent(f"missing field(s) {', '.join(missing)}")
    event_type = _text(fields, "event_type")
    if event_type not in EVENT_TYPES:
        raise MalformedEvent(f"event_type {event_type!r} is not one of {list(EVENT_TYPES)}")
    try:
        event_ts = datetime.fromisoformat(_text(fields, "event_ts") or "")
        amount = float(_text(fields, "amount") or "")
        quantity_text = _text(fields, "quantity")
        quantity = None if quantity_text is None else int(quantity_text)
    except ValueError as exc:
        raise MalformedEvent(f"unparsable field: {exc}") from exc
    if event_ts.tzinfo is not None:
        raise MalformedEvent("event_ts must be the dataset's local wall-clock time (no offset)")
    if not math.isfinite(amount) or abs(amount) > NUMERIC_LIMIT:
        raise MalformedEvent(f"amount {amount!r} is not a finite number within ±{NUMERIC_LIMIT:g}")
    return StreamEvent(
        event_id=_text(fields, "event_id") or "",
        customer_id=_text(fields, "customer_id"),
        event_ts=event_ts,
        order_id=_text(fields, "order_id"),
        product_id=_text(fields, "product_id"),
        quantity=quantity,
        amount=amount,
        event_type=event_type,
        exclude_reason=_text(fields, "exclude_reason"),
    )
