"""robots.txt (RFC 9309, parsed by protego) and the X-Robots-Tag response header.

robots.txt is fetched once per origin and cached; a burst of requests to a new
host waits on one shared fetch. Outcomes follow RFC 9309 section 2.3.1:

- 2xx: the rules apply (only the first 512 KiB are parsed, as the RFC allows);
- 4xx (except 429), or too many redirects: no rules, everything allowed;
- 5xx, 429, unreachable: everything disallowed for a while, then asked again.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from protego import Protego

MAX_ROBOTS_BYTES = 512 * 1024
# The RFC asks not to use a cached robots.txt for more than 24 hours.
RULES_TTL_S = 24 * 3600.0
# A host whose robots.txt failed is left alone this long before asking again.
ERROR_TTL_S = 600.0
MAX_HOSTS = 10_000


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """What one origin's robots.txt says (``parser`` None: no rules)."""

    parser: Protego | None = None
    disallow_all: bool = False
    # Why everything is disallowed ("HTTP 503", "unreachable: ..."), for error messages.
    detail: str = ""

    def allows(self, url: str, token: str) -> bool:
        if self.disallow_all:
            return False
        if self.parser is None:
            return True
        return bool(self.parser.can_fetch(url, token))

    def crawl_delay(self, token: str) -> float:
        if self.parser is None:
            return 0.0
        delay = self.parser.crawl_delay(token)
        return float(delay) if delay else 0.0


ALLOW_ALL = RobotsRules()


def rules_from_response(status: int, body: bytes) -> tuple[RobotsRules, float]:
    """Rules and how long to keep them, from robots.txt's final HTTP status and body."""
    if status == 429 or status >= 500:
        return RobotsRules(disallow_all=True, detail=f"robots.txt answered HTTP {status}"), ERROR_TTL_S
    if 200 <= status < 300:
        text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
        if not text.strip():
            return ALLOW_ALL, RULES_TTL_S
        return RobotsRules(Protego.parse(text)), RULES_TTL_S
    return ALLOW_ALL, RULES_TTL_S


RobotsLoader = Callable[[str], Awaitable[tuple[int, bytes]]]


class RobotsAnswers(Protocol):
    """robots.txt answers kept beyond one fetcher (a cluster's, shared by every node):
    ``answer(origin, load)`` is the known ``(status, body)``, else ``load(origin)``'s, passed on."""

    async def answer(self, origin: str, load: RobotsLoader) -> tuple[int, bytes]: ...


class RobotsCache:
    """Per-origin robots.txt rules, loaded at most once at a time per origin.

    ``load(origin)`` returns robots.txt's final HTTP status and body; any
    exception it raises counts as "unreachable". Entries expire (24 h, or
    ``error_ttl_s`` after a failure); past ``max_hosts`` the oldest go first.
    """

    def __init__(
        self,
        load: Callable[[str], Awaitable[tuple[int, bytes]]],
        *,
        max_hosts: int = MAX_HOSTS,
        error_ttl_s: float = ERROR_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._max_hosts = max_hosts
        self._error_ttl_s = error_ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[RobotsRules, float]] = {}
        self._pending: dict[str, asyncio.Future[RobotsRules]] = {}
        self.loads = 0

    async def rules(self, origin: str) -> RobotsRules:
        entry = self._entries.get(origin)
        if entry is not None and entry[1] > self._clock():
            return entry[0]
        pending = self._pending.get(origin)
        if pending is None:
            pending = self._pending[origin] = asyncio.ensure_future(self._refresh(origin))
            pending.add_done_callback(lambda _: self._pending.pop(origin, None))
        # shield: one waiter being cancelled must not cancel the shared load.
        return await asyncio.shield(pending)

    def cancel_pending(self) -> None:
        """Stop loads in flight (the Fetcher is closing)."""
        for task in list(self._pending.values()):
            task.cancel()

    def cached(self, origin: str) -> RobotsRules | None:
        """The cached rules, if fresh, without loading."""
        entry = self._entries.get(origin)
        return entry[0] if entry is not None and entry[1] > self._clock() else None

    async def _refresh(self, origin: str) -> RobotsRules:
        self.loads += 1
        try:
            status, body = await self._load(origin)
        except Exception as exc:
            rules = RobotsRules(disallow_all=True, detail=f"robots.txt unreachable: {type(exc).__name__} {exc}")
            ttl = self._error_ttl_s
        else:
            rules, ttl = rules_from_response(status, body)
            if rules.disallow_all:
                ttl = self._error_ttl_s
        self._entries.pop(origin, None)
        self._entries[origin] = (rules, self._clock() + ttl)
        while len(self._entries) > self._max_hosts:
            del self._entries[next(iter(self._entries))]  # oldest loaded first
        return rules


# Directives that mean "do not use this for Sozy": no indexing, no AI use, or both.
BLOCKING_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex", "none"})
# Directives that carry a value after a colon (not a user-agent scope).
_VALUED = frozenset({"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview", "indexifembedded"})
_AGENT = re.compile(r"^[a-z0-9_.\-]+$")


def x_robots_directives(values: Iterable[str], token: str) -> set[str]:
    """Directives from X-Robots-Tag header values that apply to ``token``.

    Unscoped directives apply to every crawler; ``"SozyBot: noindex, noai"``
    scopes what follows (up to the next scope or header) to one user agent.
    """
    token = token.lower()
    found: set[str] = set()
    for value in values:
        scope: str | None = None
        for part in value.split(","):
            item = part.strip().lower()
            if not item:
                continue
            name, colon, rest = item.partition(":")
            name = name.strip()
            if colon and name not in _VALUED:
                if not _AGENT.match(name):
                    continue  # e.g. the time part of an unavailable_after date
                scope, item = name, rest.strip()
                if not item:
                    continue
            if scope is None or scope == token:
                found.add(item.partition(":")[0].strip())
    return found


def x_robots_block(values: Iterable[str], token: str) -> str | None:
    """The first blocking directive that applies to ``token``, or None."""
    hit = x_robots_directives(values, token) & BLOCKING_DIRECTIVES
    return min(hit) if hit else None
