"""uvicorn, configured from the settings: every limit and timeout set on purpose.

``python -m sozy.api`` and the tests' live server both build their server here,
so what the tests see over TCP is what a deployment runs.
"""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp

from sozy.config import Settings

# Seconds a shutdown waits for requests in progress before closing them.
GRACEFUL_SHUTDOWN_S = 10


def server_config(app: ASGIApp, settings: Settings, *, port: int | None = None) -> uvicorn.Config:
    """uvicorn's Config for ``app`` under ``settings`` (``port`` overrides ``api.port``; 0 = any free port)."""
    api = settings.api
    trusted = list(api.forwarded_allow_ips)
    # access_log=False alone leaves uvicorn's access logger live wherever a handler sits on
    # it (a test harness, a custom log set-up): it must never write a query string.
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Config(
        app,
        host=api.host,
        port=api.port if port is None else port,
        # h11 in pure Python: its framing is the one FramingGuard and the tests know.
        http="h11",
        log_config=None,  # keep sozy's logging set-up
        log_level=settings.log_level.lower(),
        # Off: uvicorn logs the raw path with its query string; sozy.api.accesslog logs the route.
        access_log=False,
        lifespan="on",
        # Forwarded headers only from the proxies named in api.forwarded_allow_ips.
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or [],
        server_header=False,
        # Connections and requests beyond this are answered 503 at once.
        limit_concurrency=max(1, api.max_connections),
        timeout_keep_alive=max(1, int(api.keep_alive_s)),
        h11_max_incomplete_event_size=api.max_header_bytes,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
