"""robots.txt at fetch time: whether a URL may be fetched, and how long its host asks us
to wait between requests (Crawl-delay). The rules themselves are ``sozy.fetch.robots``."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from . import errors
from .errors import FetchError
from .robots import MAX_ROBOTS_BYTES, RobotsCache

ROBOTS_ACCEPT = "text/plain,*/*;q=0.5"
# RFC 9309 asks crawlers to follow at least five redirects for robots.txt.
ROBOTS_MAX_REDIRECTS = 5


class RobotsGate:
    """Checks URLs against their origin's robots.txt for one user-agent token."""

    def __init__(self, cache: RobotsCache, token: str, max_delay_s: float) -> None:
        self.cache = cache
        self.token = token
        # A Crawl-delay longer than this is cut to it (backoff_max_s): one host cannot stall a crawl.
        self.max_delay_s = max_delay_s

    async def delay(self, url: str, target: URL, origin: str) -> float:
        """Raise the FetchError robots.txt means for ``target``; else the host's Crawl-delay."""
        rules = self.cache.cached(origin)
        if rules is None:
            rules = await self.cache.rules(origin)
        if rules.parser is None and not rules.disallow_all:
            return 0.0  # no robots.txt: the common fast path
        if rules.disallow_all:
            raise FetchError(errors.ROBOTS_UNAVAILABLE, url, rules.detail)
        if not rules.allows(str(target), self.token):
            raise FetchError(errors.ROBOTS_TXT, url, f"disallowed for {self.token}: {target}")
        return min(rules.crawl_delay(self.token), self.max_delay_s)


async def get_robots_txt(session: aiohttp.ClientSession, origin: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
    """robots.txt's final status and body (redirects followed, as RFC 9309 asks)."""
    try:
        async with session.get(f"{origin}/robots.txt", headers=headers, max_redirects=ROBOTS_MAX_REDIRECTS) as response:
            if not 200 <= response.status < 300:
                return response.status, b""
            body = bytearray()
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) >= MAX_ROBOTS_BYTES:
                    break  # the RFC lets crawlers parse only the first 500 KiB
            return response.status, bytes(body)
    except aiohttp.TooManyRedirects:
        return 404, b""  # RFC 9309 2.3.1.2: may be treated as unavailable (allow all)
