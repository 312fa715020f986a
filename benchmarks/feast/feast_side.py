"""The Feast side of ``make bench-feast``: run by the Feast venv's Python, never imported by the
project (it needs only Feast and what Feast brings: pandas, pyarrow, Dask).

Input, in the work folder the project side prepared: ``windows.parquet``, the feature view's
source (per customer, one row for every day its window values change, stamped at that day's
midnight, holding the windows [day - w, day)), and ``entities.parquet`` (customer_id,
event_timestamp = T). The feature repo is written there too: one entity, one batch feature view
over the file (ttl 0: no expiry, a value holds until the next change), the default ``file``
offline store. Timed: ``get_historical_features(...).to_df()``, Feast's point-in-time join.
Output: ``feast_features.parquet`` and a JSON line on stdout (seconds, rows, peak RSS).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int32

FEATURE_STORE_YAML = """\
project: churn_bench
registry: {work}/registry.db
provider: local
offline_store:
  type: file
online_store:
  type: sqlite
  path: {work}/online.db
entity_key_serialization_version: 3
"""


def main(work: Path) -> None:
    (work / "feature_store.yaml").write_text(FEATURE_STORE_YAML.format(work=work))
    schema = pq.read_schema(work / "windows.parquet")
    features = [name for name in schema.names if name not in ("customer_id", "event_timestamp")]
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    view = FeatureView(
        name="customer_windows",
        entities=[customer],
        ttl=timedelta(0),
        schema=[
            Field(name=name, dtype=Float64 if "revenue" in name or "value" in name else Int32)
            for name in features
        ],
        source=FileSource(path=str(work / "windows.parquet"), timestamp_field="event_timestamp"),
        online=False,
    )
    store = FeatureStore(repo_path=str(work))
    began = time.perf_counter()
    store.apply([customer, view])
    applied = time.perf_counter() - began
    entities = pd.read_parquet(work / "entities.parquet")
    began = time.perf_counter()
    result = store.get_historical_features(
        entity_df=entities, features=[f"customer_windows:{name}" for name in features]
    ).to_df()
    joined = time.perf_counter() - began
    result.to_parquet(work / "feast_features.parquet", index=False)
    print(
        json.dumps(
            {
                "feast_version": __import__("feast").__version__,
                "apply_seconds": applied,
                "join_seconds": joined,
                "entity_rows": len(entities),
                "result_rows": len(result),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
