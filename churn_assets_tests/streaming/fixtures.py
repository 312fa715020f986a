"""Events for the stream tests, written like the feature-store fixture's lines.

:func:`event` builds the canonical event a retail invoice line becomes (cancellation for a
``C`` invoice, return for a negative quantity, purchase otherwise; amount = quantity x price),
and :func:`reference_state` applies events the way the Redis script does, so unit tests pin the
derivation and integration tests pin the script against the same reference.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from churn_assets.lib.stream.events import StreamEvent
from churn_assets.lib.stream.tiles import CustomerState


def event(
    order: str,
    product: str | None,
    quantity: int,
    ts: str,
    price: float,
    customer: str | None = "1",
    *,
    exclude_reason: str | None = None,
) -> StreamEvent:
    if order.startswith("C"):
        kind = "cancellation"
    elif quantity < 0:
        kind = "return"
    else:
        kind = "purchase"
    key = f"{order}|{product}|{quantity}|{ts}|{price}|{customer}"
    return StreamEvent(
        event_id=hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + ":0",
        customer_id=customer,
        event_ts=datetime.fromisoformat(ts),
        order_id=order,
        product_id=product,
        quantity=quantity,
        amount=quantity * price,
        event_type=kind,
        exclude_reason=exclude_reason,
    )


def reference_state(events: Iterable[StreamEvent]) -> CustomerState:
    """One customer's state from its events, each counted once (by event id), each purchase
    order counted once per day: the semantics of the apply script."""
    state, seen, orders = CustomerState(), set(), set()
    for item in events:
        if item.event_id in seen:
            continue
        seen.add(item.event_id)
        new_order = item.is_purchase and (item.day, item.order_id) not in orders
        if item.is_purchase:
            orders.add((item.day, item.order_id))
        state.add(item, new_order)
    return state


# The feature-store fixture's customer 1 (window edges at T = 2011-04-01) and customer 9 (long
# windows), line for line (churn_assets_tests/features/fixtures.py): the stream must give the
# same hand-computed values the dbt tests assert.
CUSTOMER_1 = (
    event("102", "C", 2, "2010-12-31 23:59", 5.0),
    event("103", "B", 3, "2011-01-31 00:00", 2.0),
    event("104", "A", 1, "2011-03-01 23:59", 1.0),
    event("100", "A", 1, "2011-03-02 00:00", 10.0),
    event("C105", "A", -1, "2011-03-10 10:00", 10.0),
    event("101", "D", 1, "2011-04-01 00:00", 1000.0),
)
CUSTOMER_9 = (
    event("900", "A", 1, "2010-03-31 23:59", 1.0, "9"),
    event("901", "A", 1, "2010-04-01 00:00", 2.0, "9"),
    event("902", "B", 1, "2010-06-29 23:59", 4.0, "9"),
    event("903", "A", 1, "2010-06-30 00:00", 8.0, "9"),
    event("904", "C", 1, "2010-10-02 23:59", 16.0, "9"),
    event("905", "A", 1, "2010-10-03 00:00", 32.0, "9"),
)
FIXTURE_FIRST_DAY = "2010-03-31"
"""The first event of the feature-store fixture: windows reaching before it are NULL."""
