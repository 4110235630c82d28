"""Politeness per host: at most ``per_host`` requests at once, and spacing between them.

A host is a pool key: an origin (scheme, host, port) for ordinary requests,
or what a ``FetchPolicy`` names (one API endpoint, or every Wikimedia media
download together), with the policy's own limit. Spacing comes from the configured
per-host rate, a robots.txt Crawl-delay, and Retry-After pauses; the longest
applies. Host entries disappear once idle, so a crawl over a million hosts
keeps only the busy ones in memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Protocol


class Limiter(Protocol):
    """What the fetcher asks of its per-host limits: ``HostLimiter`` on one machine,
    ``sozy.crawl.cluster.slots.SharedHostLimiter`` (the same limiter, held for a whole cluster)."""

    def slot(self, origin: str, min_interval: float = 0.0, limit: int = 0) -> AbstractAsyncContextManager[None]: ...

    def hold(self, origin: str, seconds: float, limit: int = 0) -> None: ...


class _Host:
    __slots__ = ("holding", "next_start", "semaphore", "users")

    def __init__(self, limit: int) -> None:
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0  # holding or waiting for a slot
        self.holding = 0
        self.next_start = 0.0  # monotonic time before which no request may start (0: none)


class HostLimiter:
    """Per-host concurrency and request spacing.

    ``async with limiter.slot(origin, min_interval):`` waits for one of the
    host's slots and for the host's next allowed start time.
    """

    def __init__(self, per_host: int, rate: float = 0.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_host = per_host
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._hosts: dict[str, _Host] = {}

    def slot(self, origin: str, min_interval: float = 0.0, limit: int = 0) -> _Slot:
        """A hold on one of ``origin``'s slots: ``limit`` at once (0: ``per_host``)."""
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host(limit or self.per_host)
        return _Slot(self, origin, host, max(self.interval, min_interval))

    def hold(self, origin: str, seconds: float, limit: int = 0) -> None:
        """No new request to ``origin`` for ``seconds`` (a server asked us to back off)."""
        host = self._hosts.get(origin)
        if host is None:
            host = self._hosts[origin] = _Host(limit or self.per_host)
        host.next_start = max(host.next_start, self._clock() + seconds)

    def active(self, origin: str) -> int:
        """Requests to ``origin`` holding a slot now."""
        host = self._hosts.get(origin)
        return 0 if host is None else host.holding

    def __len__(self) -> int:
        return len(self._hosts)

    def _release(self, origin: str, host: _Host) -> None:
        host.users -= 1
        if host.users or self._hosts.get(origin) is not host:
            return
        if not host.next_start or host.next_start <= self._clock():
            del self._hosts[origin]


class _Slot:
    """One request's hold on a host (an async context manager; a class, not a generator, for speed)."""

    __slots__ = ("_acquired", "_host", "_interval", "_limiter", "_origin")

    def __init__(self, limiter: HostLimiter, origin: str, host: _Host, interval: float) -> None:
        self._limiter = limiter
        self._origin = origin
        self._host = host
        self._interval = interval
        self._acquired = False

    async def __aenter__(self) -> None:
        host = self._host
        host.users += 1
        try:
            await host.semaphore.acquire()
            self._acquired = True
            host.holding += 1
            if self._interval > 0 or host.next_start:
                await self._wait_turn(host)
        except BaseException:
            self._exit()
            raise

    async def _wait_turn(self, host: _Host) -> None:
        # Reserve the next start time before sleeping, so concurrent requests
        # queue up one interval apart instead of all waking at once.
        while True:
            now = self._limiter._clock()
            start = max(now, host.next_start)
            if start <= now:
                # 0.0 means "no spacing": the common case skips this method entirely.
                host.next_start = now + self._interval if self._interval > 0 else 0.0
                return
            if self._interval > 0:
                host.next_start = start + self._interval
                await asyncio.sleep(start - now)
                return
            await asyncio.sleep(start - now)  # a hold: look again, it may have grown

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit()

    def _exit(self) -> None:
        if self._acquired:
            self._host.holding -= 1
            self._host.semaphore.release()
            self._acquired = False
        self._limiter._release(self._origin, self._host)
