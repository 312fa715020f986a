"""``python -m churn_assets.streaming``: run one feature-and-scoring worker of a dataset.

Stops cleanly on SIGTERM or Ctrl-C after the batch in hand (a SIGKILL is survived too: the
restarted worker re-reads its pending entries first). Examples::

    python -m churn_assets.streaming                          # first events dataset
    python -m churn_assets.streaming --dataset retail --consumer worker-2
    python -m churn_assets.streaming --bootstrap --as-of 2011-11-01
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from datetime import date
from types import FrameType

import redis

from churn_assets.lib.stream import state as store
from churn_assets.replay import events_dataset
from churn_assets.resources import AlertNotifier, MLflowResource
from churn_assets.settings import settings_from_env
from churn_assets.streaming.bootstrap import bootstrap
from churn_assets.streaming.config import StreamConfig
from churn_assets.streaming.worker import Worker

log = logging.getLogger("churn_assets.streaming")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m churn_assets.streaming", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", help="events dataset (default: the first declared)")
    parser.add_argument("--consumer", help="consumer name (default: CHURN_STREAM_CONSUMER)")
    parser.add_argument(
        "--bootstrap",
        action="store_true",
        help="rebuild the online state from the batch store first (also done when none exists)",
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="with --bootstrap: the batch tiles before this date (default: newest observation)",
    )
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop after this long without new events (tests and benchmarks)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_from_env()
    spec = events_dataset(args.dataset)
    config = StreamConfig.from_env()
    if args.consumer:
        config = config.model_copy(update={"consumer": args.consumer})
    client = redis.Redis.from_url(settings.redis_url)
    if args.bootstrap or store.current_meta(client, spec.name) is None:
        handed = bootstrap(client, spec, settings.duckdb_path, args.as_of)
        log.info(
            "%s: online state v%s as of %s (%d customers, %d streamed events carried over)",
            spec.name,
            handed.meta.version,
            handed.meta.as_of,
            handed.customers,
            handed.replayed,
        )
    MLflowResource(
        tracking_uri=settings.mlflow_tracking_uri, artifact_root=settings.mlflow_artifact_root
    ).configure()
    stopping = False

    def stop(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        log.info("signal %d: stopping after the current batch", signum)
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker = Worker(client, spec, config, AlertNotifier(webhook_url=settings.alert_webhook_url))
    log.info("%s: consumer %r of group %r", spec.name, config.consumer, store.GROUP)
    worker.run(lambda: stopping, idle_exit_seconds=args.exit_when_idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
