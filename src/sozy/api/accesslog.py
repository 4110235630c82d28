"""The access log: one line per request with its method, route template, status and time.

Never the path as sent, its query string, headers or body: a query string can
carry a token or the URL of someone's photo (``DELETE /v1/faces?image_url=``),
and uploaded photos are never logged. uvicorn's own access log, which writes
the raw path with its query, is switched off (``sozy.api.server``).
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from sozy.api.metrics import observe_request

log = logging.getLogger("sozy.api.access")


class AccessLog:
    """ASGI middleware: logs ``GET /v1/faces/{id} 200 3.1ms`` at INFO on ``sozy.api.access``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await observe_request(self.app, scope, receive, send, _log_request)


def _log_request(method: str, route: str, status: int, seconds: float) -> None:
    log.info("%s %s %d %.1fms", method, route, status, seconds * 1000.0)
