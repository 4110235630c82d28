"""Bearer-key checks for the routes that are not for everyone (takedowns, metrics)."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from sozy.api.errors import ApiError


def require_bearer(request: Request, key: str, what: str = "key") -> None:
    """Raise ApiError(401) unless the request says ``Authorization: Bearer <key>``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # compare_digest on bytes: constant time, and no TypeError for non-ASCII input.
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
        raise ApiError(
            401,
            "unauthorized",
            f"a valid {what} is needed: Authorization: Bearer <key>",
            {"WWW-Authenticate": "Bearer"},
        )
