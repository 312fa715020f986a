"""Streaming features: live events update per-customer daily tiles in Redis, exactly as the batch
feature store (``dbt/models/intermediate/events``) aggregates them, so online and offline
features are the same numbers.

* :mod:`.events`: an event as a stream entry (the raw contract's canonical fields), and the
  staging rules that decide whether it counts.
* :mod:`.tiles`: a customer's state (daily tiles, product days) and the event features at an
  observation date T derived from it: the SQL of ``fct_features`` in Python.
* :mod:`.state`: the state in Redis (versioned, published by a pointer flip), the atomic
  apply-and-record script, bootstrap and hand-over from the batch store.
* :mod:`.compare`: online against offline features, with the project's parity tolerances.

Pure: no Dagster, no model. The worker (``churn_assets.streaming``) adds scoring.
"""
