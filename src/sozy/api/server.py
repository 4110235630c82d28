"""uvicorn, configured from the settings: every limit and timeout set on purpose.

``python -m sozy.api`` and the tests' live server both build their server here,
so what the tests see over TCP is what a deployment runs.

uvicorn's h11 protocol has a clock for an idle keep-alive connection but none
for a request head that trickles in (any byte restarts the keep-alive clock),
so a client sending a header byte every few seconds would hold its connection
for ever. :func:`h11_protocol` adds one: a request head must be complete within
``api.header_timeout_s`` of the connection opening or the previous response
ending, else the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from sozy.config import Settings

# Seconds a shutdown waits for requests in progress before closing them.
GRACEFUL_SHUTDOWN_S = 10


class _HeadTimedH11(H11Protocol):
    """uvicorn's h11 protocol with a clock on every request head (see the module's docstring)."""

    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a whole request head arrived
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        # Armed first: a pipelined request that super() parses at once disarms it again.
        self._arm_head_timer()
        super().on_response_complete()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        if self.head_timeout_s > 0:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()


def h11_protocol(head_timeout_s: float) -> type[H11Protocol]:
    """The h11 protocol class uvicorn runs, with ``head_timeout_s`` on every request head."""
    return type("SozyH11Protocol", (_HeadTimedH11,), {"head_timeout_s": head_timeout_s})


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
        # h11 in pure Python (its framing is the one FramingGuard and the tests know), with a
        # clock on request heads.
        http=h11_protocol(api.header_timeout_s),
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
