"""Online features against the batch feature store: the parity the stream promises.

Integers must be equal, NULL must meet NULL (a left-censored window is unknown on both sides),
money (features of the spend and returns families) may differ by half a penny (0.005: the
batch sums exact decimals, the stream exact thousandths, and both end in a double), and every
other double by a relative 1e-9 (the same float operations in the same order). A customer on
one side only is a mismatch too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from churn_assets.lib.features_registry import Feature
from churn_assets.lib.online_store import Mismatch

MONEY_TOLERANCE = 0.005
RELATIVE_TOLERANCE = 1e-9
MONEY_FAMILIES = frozenset({"spend", "returns"})


def _equal(feature: Feature, expected: object, actual: object) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if feature.dtype == "integer":
        return expected == actual
    e, a = float(expected), float(actual)  # type: ignore[arg-type]
    if feature.family in MONEY_FAMILIES:
        return abs(e - a) <= MONEY_TOLERANCE
    return math.isclose(e, a, rel_tol=RELATIVE_TOLERANCE, abs_tol=RELATIVE_TOLERANCE)


def compare_features(
    online: pl.DataFrame, offline: pl.DataFrame, features: Sequence[Feature], entity: str
) -> list[Mismatch]:
    """Every difference between two feature frames keyed by ``entity`` (one row each)."""
    names = [f.name for f in features]
    joined = offline.select(entity, *names).join(
        online.select(entity, *names), on=entity, how="full", suffix="__online", coalesce=True
    )
    in_offline = set(offline[entity].to_list())
    in_online = set(online[entity].to_list())
    mismatches = [Mismatch(c, "*", "a batch row", None) for c in sorted(in_online - in_offline)]
    mismatches += [Mismatch(c, "*", "an online row", None) for c in sorted(in_offline - in_online)]
    both = joined.filter(pl.col(entity).is_in(sorted(in_online & in_offline)))
    ids = both[entity].to_list()
    for feature in features:
        expected = both[feature.name].to_list()
        actual = both[f"{feature.name}__online"].to_list()
        for customer_id, e, a in zip(ids, expected, actual, strict=True):
            if not _equal(feature, e, a):
                mismatches.append(Mismatch(customer_id, feature.name, e, a))
    return mismatches
