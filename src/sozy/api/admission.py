"""Bounded queues in front of costly work: refuse early instead of piling up.

A :class:`Gate` counts holders of a slot. When ``limit`` already hold one, the
next is refused with 503 and a Retry-After estimated from the measured service
time: ``pending × service_s / servers`` seconds drain the queue. Two gates guard
a search: uploads being read (bodies in memory) and searches at the face engine
(running in a worker or waiting for one). A search reserves its engine slot
before it reads a byte of its body, so a burst degrades into quick refusals
rather than ever-growing latency and memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from sozy.api.errors import ApiError

# Weight of the newest service time in the running average.
_EWMA_ALPHA = 0.2
MAX_RETRY_AFTER_S = 60


class Gate:
    """Counts holders of a slot; ``slot()`` raises ApiError(503) when all ``limit`` are taken."""

    def __init__(self, limit: int, servers: int = 1, *, what: str = "searches", service_s: float = 0.5) -> None:
        self.limit = max(1, limit)
        self.servers = max(1, servers)  # how many holders are served at once
        self.what = what
        self.pending = 0
        self.service_s = service_s  # until measured

    @property
    def full(self) -> bool:
        return self.pending >= self.limit

    def check(self) -> None:
        """Raise ApiError(503) now if a slot could not be had."""
        if self.full:
            raise ApiError(
                503,
                "overloaded",
                f"the server is busy with other {self.what}; try again shortly",
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

    def observe(self, seconds: float, position: int = 1) -> None:
        """Record one task's duration, measured from the moment it joined the queue at
        ``position`` (1 = it started at once): with FIFO service it waited
        ``ceil(position / servers) - 1`` service times before its own."""
        rounds = max(1, math.ceil(position / self.servers))
        self.service_s += _EWMA_ALPHA * (seconds / rounds - self.service_s)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained, between 1 and 60."""
        estimate = self.pending * self.service_s / self.servers
        return min(MAX_RETRY_AFTER_S, max(1, math.ceil(estimate)))


def engine_gate(limit: int, workers: int) -> Gate:
    """Searches at the face engine: ``workers`` photos are embedded at once."""
    return Gate(limit, workers, what="searches")


def upload_gate(limit: int) -> Gate:
    """Request bodies being read: all of them arrive at once, each at its client's pace."""
    return Gate(limit, limit, what="uploads", service_s=1.0)
