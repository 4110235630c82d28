"""Fetching for the crawler: one polite, bounded aiohttp client.

``Fetcher`` gets images (sniffed, size-capped, ``file://`` too), HTML pages and
API answers; it honours robots.txt and X-Robots-Tag, limits concurrency per
host and overall, retries what is worth retrying, and fails with a
``FetchError`` whose ``reason`` is a short stable code.
"""

from __future__ import annotations

from .errors import FetchError
from .fetched import Fetched
from .fetcher import Fetcher

__all__ = ["FetchError", "Fetched", "Fetcher"]
