"""The streaming service: a Redis Streams worker that keeps every customer's online features
equal to the batch feature store's and scores customers as their events arrive.

``python -m churn_assets.streaming`` runs a worker (``make stream``); the producer is
``python -m churn_assets.replay stream --month YYYY-MM``. See ``docs/streaming.md``.
"""
