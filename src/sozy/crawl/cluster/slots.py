"""Politeness for a whole cluster: one ``HostLimiter`` and the robots.txt answers, held by one actor.

Each node's ``Fetcher`` asks ``HostSlots`` for a slot before every request
to a host and gives it back after, so ``crawl.per_host``, ``per_host_rate``,
Crawl-delay and Retry-After pauses hold for the crawl as a whole, whatever
the number of nodes: the same ``HostLimiter`` code that limits one machine
decides, in one place.

A slot is named by a token the node makes up before asking, so a node that
gives up waiting (a cancelled fetch) can hand back a slot it has not been
granted yet, and the driver can hand back every slot of a node it lost.

The same actor keeps every host's robots.txt answer (``robots.RobotsBoard``),
so a host's robots.txt is read once for the crawl, not once per node.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from sozy.fetch.limits import HostLimiter

from .robots import RobotsBoard

# The actor's name in the crawl's Ray namespace.
ACTOR_NAME = "sozy-host-slots"


class HostSlots:
    """The cluster's per-host limiter (the body of a Ray actor; async methods run on its loop)."""

    def __init__(self, per_host: int, rate: float = 0.0, robots_wait_s: float = 60.0) -> None:
        self._limiter = HostLimiter(per_host, rate)
        self._robots = RobotsBoard(robots_wait_s)
        self._held: dict[str, tuple[str, AbstractAsyncContextManager[None]]] = {}
        self._waiting: dict[str, str] = {}  # token → node, while its slot is being waited for
        self._dropped: set[str] = set()  # tokens handed back before they were granted

    async def acquire(self, token: str, node: str, origin: str, min_interval: float = 0.0, limit: int = 0) -> None:
        """Wait for a slot to ``origin`` (and its turn); held under ``token`` until ``release``.

        ``limit``: the pool's own concurrency (a fetch policy's, e.g. 2 for Wikimedia media); 0 = per_host.
        """
        slot = self._limiter.slot(origin, min_interval, limit)
        self._waiting[token] = node
        try:
            await slot.__aenter__()
        finally:
            self._waiting.pop(token, None)
        if token in self._dropped:
            self._dropped.discard(token)
            await slot.__aexit__(None, None, None)
            return
        self._held[token] = (node, slot)

    async def release(self, token: str) -> None:
        held = self._held.pop(token, None)
        if held is None:
            if token in self._waiting:
                self._dropped.add(token)
            return
        await held[1].__aexit__(None, None, None)

    def hold(self, origin: str, seconds: float, limit: int = 0) -> None:
        """No new request to ``origin`` for ``seconds``, from any node (a server asked to back off)."""
        self._limiter.hold(origin, seconds, limit)

    async def release_node(self, node: str) -> int:
        """Hand back every slot ``node`` holds or waits for (the node is gone); returns how many."""
        tokens = [t for t, (n, _) in self._held.items() if n == node]
        for token in tokens:
            await self.release(token)
        waiting = [t for t, n in self._waiting.items() if n == node]
        self._dropped.update(waiting)
        return len(tokens) + len(waiting)

    async def robots(self, origin: str) -> tuple[int, bytes] | None:
        """``origin``'s robots.txt answer, or None: the asking node loads it (see ``robots.RobotsBoard``)."""
        return await self._robots.get(origin)

    def put_robots(self, origin: str, status: int, body: bytes) -> None:
        self._robots.put(origin, status, body)

    def drop_robots(self, origin: str) -> None:
        self._robots.drop(origin)

    def active(self, origin: str) -> int:
        """Requests to ``origin`` holding a slot now, over the whole cluster."""
        return self._limiter.active(origin)


class SharedHostLimiter:
    """A node's view of ``HostSlots``: what ``Fetcher(limiter=...)`` takes instead of its own limiter."""

    def __init__(self, actor: Any, node: str) -> None:
        self._actor = actor
        self._node = node

    def slot(self, origin: str, min_interval: float = 0.0, limit: int = 0) -> _SharedSlot:
        return _SharedSlot(self._actor, self._node, origin, min_interval, limit)

    def hold(self, origin: str, seconds: float, limit: int = 0) -> None:
        self._actor.hold.remote(origin, seconds, limit)


class _SharedSlot:
    __slots__ = ("_actor", "_interval", "_limit", "_node", "_origin", "_token")

    def __init__(self, actor: Any, node: str, origin: str, interval: float, limit: int = 0) -> None:
        self._actor = actor
        self._node = node
        self._origin = origin
        self._interval = interval
        self._limit = limit
        self._token = uuid.uuid4().hex

    async def __aenter__(self) -> None:
        try:
            await self._actor.acquire.remote(self._token, self._node, self._origin, self._interval, self._limit)
        except BaseException:
            # Cancelled (or the actor failed) while waiting: the slot, if granted later, goes back.
            self._actor.release.remote(self._token)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Calls from one caller reach the actor in order: this release follows its acquire.
        self._actor.release.remote(self._token)
