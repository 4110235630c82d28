"""The access log: one line per request with its method, route template, status and time.

Never the path as sent, its query string, headers or body: a query string can
carry a token or the URL of someone's photo (``DELETE /v1/faces?image_url=``),
and uploaded photos are never logged. uvicorn's own access log, which writes
the raw path with its query, is switched off (``sozy.api.server``).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sozy.api.metrics import UNMATCHED_ROUTE, method_label

log = logging.getLogger("sozy.api.access")


class AccessLog:
    """ASGI middleware: logs ``GET /v1/faces/{id} 200 3.1ms`` at INFO on ``sozy.api.access``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            log.info("%s %s %d %.1fms", method_label(scope["method"]), route, status, elapsed_ms)
