"""The fetcher's aiohttp session and timeouts, built from ``[crawl]`` settings."""

from __future__ import annotations

import aiohttp

from sozy.config import CrawlSettings

# Real sites send long CSP / Set-Cookie headers; aiohttp's default is 8 KiB.
MAX_FIELD_SIZE = 32 * 1024
MAX_LINE_SIZE = 16 * 1024


def request_timeout(settings: CrawlSettings) -> aiohttp.ClientTimeout:
    """Connect, read (a server that stops sending) and total (a slow drip) limits per request."""
    return aiohttp.ClientTimeout(
        total=settings.total_timeout_s, sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
    )


def slow_query_timeout(settings: CrawlSettings, seconds: float) -> aiohttp.ClientTimeout:
    """``request_timeout`` with ``seconds`` for reading and in total (SPARQL allows 60 s)."""
    return aiohttp.ClientTimeout(total=seconds, sock_connect=settings.connect_timeout_s, sock_read=seconds)


def open_session(settings: CrawlSettings, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A session sized to the fetcher's own limits (needs a running event loop)."""
    connector = aiohttp.TCPConnector(
        # The fetcher's semaphores are the real limits; the pool matches them so a
        # request never waits for a connection (that wait would eat the connect timeout).
        limit=settings.concurrency,
        limit_per_host=settings.per_host,
        ttl_dns_cache=300,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        # A crawler keeps no cookies: nothing to track it by, nothing to leak.
        cookie_jar=aiohttp.DummyCookieJar(),
        max_field_size=MAX_FIELD_SIZE,
        max_line_size=MAX_LINE_SIZE,
    )
