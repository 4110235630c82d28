"""Fetching for the crawler: one polite, bounded aiohttp client.

``Fetcher`` gets images (sniffed, size-capped, ``file://`` too), HTML pages and
API answers; it honours robots.txt and X-Robots-Tag, limits concurrency per
host and overall (each request under a ``FetchPolicy``: who it says it is,
which pool of slots it takes), retries what is worth retrying, and fails with a
``FetchError`` whose ``reason`` is a short stable code.
"""

from __future__ import annotations

from .errors import FetchError
from .fetched import Fetched
from .fetcher import Fetcher
from .policy import API, WDQS, WEB, WIKIMEDIA_MEDIA, FetchPolicy, policy_for, policy_named

__all__ = [
    "API",
    "WDQS",
    "WEB",
    "WIKIMEDIA_MEDIA",
    "FetchError",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "policy_for",
    "policy_named",
]
