"""API-key authentication for the ``/v1`` routes (``X-API-Key`` header).

Keys are compared in constant time against every configured key, so response timing does
not reveal how much of a guessed key was right. Several keys can be live at once, which
is how a key is rotated: add the new one, move clients, remove the old one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader

API_KEY_HEADER = "X-API-Key"

_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="One of the keys in CHURN_API_KEYS.",
)


def api_key_guard(keys: Iterable[str]) -> Callable[[str | None], Awaitable[None]]:
    """A FastAPI dependency that answers 401 unless the request carries a configured key.

    ``async`` although it never awaits: FastAPI runs plain ``def`` dependencies in a worker
    thread, a hop that costs more than the check.
    """
    encoded = [key.encode() for key in keys]

    async def require_api_key(key: str | None = Security(_header)) -> None:
        candidate = (key or "").encode()
        # Check every key (no early exit) so timing does not depend on which one matched.
        matches = [hmac.compare_digest(candidate, known) for known in encoded]
        if not key or not any(matches):
            raise HTTPException(
                status_code=401,
                detail=f"missing or invalid {API_KEY_HEADER} header",
                headers={"WWW-Authenticate": API_KEY_HEADER},
            )

    return require_api_key
