"""What the fake Wikimedia hosts saw: every request, and how many each service handled at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class RecordedRequest:
    service: str  # "wikidata" | "commons" | "sparql" | "search" | "upload" | "robots"
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


@dataclass
class Traffic:
    """Requests by service, the peak of concurrent requests per service, and per-service delays.

    ``delays[service]`` seconds are spent inside each request of that service,
    so that a client ignoring a concurrency limit is caught overlapping.
    """

    requests: list[RecordedRequest] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    delays: dict[str, float] = field(default_factory=dict)

    def middleware(self, service_of: Callable[[web.Request], str]) -> Any:
        @web.middleware
        async def track(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):  # type: ignore[no-untyped-def]
            service = "robots" if request.path == "/robots.txt" else service_of(request)
            params = dict(request.query)
            if request.method == "POST":
                params.update({k: str(v) for k, v in (await request.post()).items()})
            self.requests.append(RecordedRequest(service, request.method, request.path, params, dict(request.headers)))
            self.in_flight[service] += 1
            self.peak[service] = max(self.peak[service], self.in_flight[service])
            try:
                if self.delays.get(service):
                    await asyncio.sleep(self.delays[service])
                return await handler(request)
            finally:
                self.in_flight[service] -= 1

        return track

    def to(self, service: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.service == service]

    def agents(self, *services: str) -> set[str]:
        """The User-Agents the given services saw."""
        return {r.headers.get("User-Agent", "") for r in self.requests if r.service in services}
