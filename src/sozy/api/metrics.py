"""Prometheus metrics in a registry of the app's own (never the process-global one).

Two apps in one process (as in the tests) then never clash, and ``/metrics``
shows exactly one app's numbers. Requests are labelled by route *template*
(``/v1/faces/{id}``), never the raw path, so the label set stays small.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sozy.api.auth import require_bearer

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED_ROUTE = "<unmatched>"
# Any other method a client invents is counted as "OTHER" (bounded label values).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    """The app's metrics: HTTP traffic, engine and store time, the engine queue."""

    def __init__(
        self,
        queue_depth: Callable[[], float],
        engine_in_flight: Callable[[], float],
        uploads_reading: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sozy_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sozy_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            ("method", "route", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.embed = Histogram(
            "sozy_embed_duration_seconds",
            "Time the face engine took for one uploaded photo (queueing included).",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store = Histogram(
            "sozy_store_duration_seconds",
            "Time of one face-store call, by operation.",
            ("operation",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fetch = Histogram(
            "sozy_image_url_fetch_duration_seconds",
            "Time to fetch a photo given by image_url.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sozy_engine_queue_depth",
            "Searches holding an engine slot (running or waiting).",
            registry=self.registry,
        )
        self.queue_depth.set_function(queue_depth)
        self.engine_in_flight = Gauge(
            "sozy_engine_in_flight",
            "Tasks the face engine reports in flight.",
            registry=self.registry,
        )
        self.engine_in_flight.set_function(engine_in_flight)
        self.uploads_reading = Gauge(
            "sozy_uploads_reading",
            "Request bodies being read right now (bounded by api.max_uploads).",
            registry=self.registry,
        )
        self.uploads_reading.set_function(uploads_reading)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def endpoint(self, key: str = "") -> Callable[[Request], Awaitable[Response]]:
        """``GET /metrics``; with a ``key``, only for ``Authorization: Bearer <key>``."""

        async def metrics(request: Request) -> Response:
            if key:
                require_bearer(request, key)
            return Response(self.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

        return metrics


def method_label(method: str) -> str:
    """The method, or ``OTHER`` for one a client invented (bounded label and log values)."""
    return method if method in _METHODS else "OTHER"


# What a finished request is reported as: method label, route template, status, seconds.
RequestDone = Callable[[str, str, int, float], None]


async def observe_request(app: ASGIApp, scope: Scope, receive: Receive, send: Send, done: RequestDone) -> None:
    """Run an HTTP request through ``app`` and report it to ``done`` however it ends (a request
    that raised before answering counts as a 500)."""
    started = time.perf_counter()
    status = 500

    async def send_wrapper(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, send_wrapper)
    finally:
        template = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        done(method_label(scope["method"]), template, status, time.perf_counter() - started)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template and final status."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await observe_request(self.app, scope, receive, send, self._record)

    def _record(self, method: str, template: str, status: int, seconds: float) -> None:
        labels = (method, template, str(status))
        self.metrics.requests.labels(*labels).inc()
        self.metrics.latency.labels(*labels).observe(seconds)
