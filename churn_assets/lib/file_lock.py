"""A cross-process ``flock`` with a timeout: one writer or many readers of a file at a time.

Used where several processes (Dagster runs, sensors, ``dagster dev`` code servers, test
workers) may touch the same file: the DuckDB database and dbt's ``target/`` folder.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def file_lock(path: Path, *, exclusive: bool = True, timeout_seconds: float) -> Iterator[None]:
    """Hold a lock on the sidecar file ``<path>.lock``; wait, then raise ``TimeoutError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + timeout_seconds
    with open(f"{path}.lock", "a") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{path} stayed locked by another process for {timeout_seconds:.0f} s"
                    ) from None
                if not waited:
                    log.info("waiting for another process to release %s", path)
                    waited = True
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
