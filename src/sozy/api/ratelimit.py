"""Per-client rate limiting: one token bucket per client address, bounded in memory."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from sozy.api.errors import ApiError

Endpoint = Callable[[Request], Awaitable[Response]]

# Buckets kept at most; the least recently seen client is forgotten first (it
# then starts again with a full bucket, which only ever errs on the lenient side).
MAX_CLIENTS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``per_minute`` requests per client, refilled continuously, bursts up to ``burst``.

    ``per_minute`` 0 means unlimited. The clock is injectable so tests need not sleep.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, per_minute))
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def acquire(self, client: str) -> float:
        """Take one token for ``client``: 0.0 when allowed, else seconds until a token is due."""
        if not self.enabled:
            return 0.0
        now = self.clock()
        bucket = self._buckets.pop(client, None)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
        self._buckets[client] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def rate_limited(limiter: RateLimiter, endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so a client over its rate gets 429 with Retry-After.

    A wrapper rather than a middleware: the route is matched first, so metrics
    count a refused request under its route.
    """

    async def limited(request: Request) -> Response:
        client = request.client
        wait = limiter.acquire(client.host if client else "unknown")
        if wait > 0:
            retry_after = str(max(1, math.ceil(wait)))
            raise ApiError(
                429,
                "rate_limited",
                f"too many requests from your address; try again in {retry_after} s",
                {"Retry-After": retry_after},
            )
        return await endpoint(request)

    return limited
