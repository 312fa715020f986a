"""A real ``redis-server`` for tests: free loopback port, data under tmp_path, torn down after.

Import the fixtures into a ``conftest.py`` (``from churn_assets_tests.redis_server import
redis_server  # noqa: F401``) or use :func:`running_redis` directly when a test needs to stop
the server itself (the service's "Redis is down" answers).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (callers retry if another process wins it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start(data_dir: Path) -> RedisServer:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    # No persistence and no protected-mode surprises: a throwaway server for one test session.
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(process, port, data_dir)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OSError(f"redis-server exited with {process.returncode} on port {port}")
        try:
            if server.client().ping():
                return server
        except redis.ConnectionError:
            time.sleep(0.02)
    server.stop()
    raise TimeoutError(
        f"redis-server did not answer on port {port} within {START_TIMEOUT_SECONDS} s"
    )


@contextmanager
def running_redis(data_dir: Path, attempts: int = 3) -> Iterator[RedisServer]:
    """Start a server (retrying if its port was taken in between) and always stop it."""
    for attempt in range(attempts):
        try:
            server = _start(data_dir)
            break
        except OSError:
            if attempt == attempts - 1:
                raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One server per test session (per xdist worker); tests keep to their own dataset keys."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server
