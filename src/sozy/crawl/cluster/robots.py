"""robots.txt answers for a whole cluster: each host's robots.txt read once, by one node.

``RobotsBoard`` (kept by the politeness actor, ``slots.HostSlots``) remembers
each origin's answer (status and body) as long as one machine's cache would
(``rules_from_response``'s time to live). The first node to ask about an
origin is told to load it; nodes asking meanwhile wait for that answer
(up to ``wait_s``, then one of them loads it itself: the first may have died).
``SharedRobotsAnswers`` is the node's side, what ``Fetcher(robots_answers=...)``
takes: each node still keeps the rules in its own ``RobotsCache``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sozy.fetch.robots import MAX_HOSTS, RobotsLoader, rules_from_response

Answer = tuple[int, bytes]


class RobotsBoard:
    """Origin → robots.txt answer, or the load in progress (event loop only)."""

    def __init__(
        self, wait_s: float, *, max_hosts: int = MAX_HOSTS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.wait_s = wait_s
        self._max_hosts = max_hosts
        self._clock = clock
        self._known: dict[str, tuple[Answer, float]] = {}
        self._loading: dict[str, asyncio.Future[Answer | None]] = {}

    async def get(self, origin: str) -> Answer | None:
        """The answer, or None: the caller loads it, then ``put`` (or ``drop`` if it cannot)."""
        while True:
            known = self._known.get(origin)
            if known is not None and known[1] > self._clock():
                return known[0]
            pending = self._loading.get(origin)
            if pending is None:
                self._loading[origin] = asyncio.get_running_loop().create_future()
                return None
            try:
                answer = await asyncio.wait_for(asyncio.shield(pending), self.wait_s)
            except TimeoutError:
                self.drop(origin)  # the loader is gone or stuck: the next one asking loads it
                continue
            if answer is not None:
                return answer

    def put(self, origin: str, status: int, body: bytes) -> None:
        _, ttl = rules_from_response(status, body)
        self._known.pop(origin, None)
        self._known[origin] = ((status, body), self._clock() + ttl)
        while len(self._known) > self._max_hosts:
            del self._known[next(iter(self._known))]  # oldest first
        pending = self._loading.pop(origin, None)
        if pending is not None and not pending.done():
            pending.set_result((status, body))

    def drop(self, origin: str) -> None:
        """The load failed: the nodes waiting ask again (one of them loads it)."""
        pending = self._loading.pop(origin, None)
        if pending is not None and not pending.done():
            pending.set_result(None)


class SharedRobotsAnswers:
    """A node's view of the board (``HostSlots.robots`` / ``put_robots`` / ``drop_robots``)."""

    def __init__(self, actor: Any) -> None:
        self._actor = actor

    async def answer(self, origin: str, load: RobotsLoader) -> Answer:
        known: Answer | None = await self._actor.robots.remote(origin)
        if known is not None:
            return known
        try:
            status, body = await load(origin)
        except BaseException:
            self._actor.drop_robots.remote(origin)
            raise
        self._actor.put_robots.remote(origin, status, body)
        return status, body
