"""``python -m churn_assets.serving``: run the scoring service under uvicorn.

uvloop and httptools (``uvicorn[standard]``) are chosen explicitly: they cut the
per-request overhead of the pure-Python event loop and HTTP parser. The configuration is
validated here, before uvicorn forks workers, so a bad setting fails once and clearly.
"""

from __future__ import annotations

import uvicorn
from pydantic import ValidationError

from churn_assets.serving.config import ServerConfig, ServingConfig


def main() -> None:
    try:
        ServingConfig.from_env()
    except ValidationError as exc:
        raise SystemExit(ServingConfig.explain(exc)) from None
    server = ServerConfig.from_env()
    uvicorn.run(
        "churn_assets.serving.app:app_from_env",
        factory=True,
        host=server.host,
        port=server.port,
        workers=server.workers,
        loop="uvloop",
        http="httptools",
        log_level=server.log_level,
        access_log=server.access_log,
    )


if __name__ == "__main__":
    main()
