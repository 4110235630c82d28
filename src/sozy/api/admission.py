"""A bounded queue in front of the face engine: refuse early instead of piling up.

Each search holds a slot from just before it hands its photo to the engine until
the engine answers. When ``limit`` searches already hold one (running in a worker
or waiting for one), the next is refused with 503 and a Retry-After estimated
from recent embedding times, so a burst degrades into quick refusals rather
than ever-growing latency and memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from sozy.api.errors import ApiError

# Weight of the newest embedding time in the running average.
_EWMA_ALPHA = 0.2


class EngineGate:
    """Counts searches at the engine; ``slot()`` raises ApiError(503) when full."""

    def __init__(self, limit: int, workers: int = 1) -> None:
        self.limit = max(1, limit)
        self.workers = max(1, workers)
        self.pending = 0
        self.average_s = 0.5  # until measured

    @property
    def full(self) -> bool:
        return self.pending >= self.limit

    def check(self) -> None:
        """Raise ApiError(503) now if a slot could not be had."""
        if self.full:
            raise ApiError(
                503,
                "overloaded",
                "the server is busy with other searches; try again shortly",
                {"Retry-After": str(self.retry_after())},
            )

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.check()
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1

    def observe(self, seconds: float) -> None:
        """Record one embedding's duration for the Retry-After estimate."""
        self.average_s += _EWMA_ALPHA * (seconds - self.average_s)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained, between 1 and 60."""
        estimate = self.pending * self.average_s / self.workers
        return min(60, max(1, math.ceil(estimate)))
