"""Redirects followed by hand: which responses redirect, where they lead, when to stop.

The crawler's fetcher and the API's fetch of an ``image_url`` both ask with
``allow_redirects=False`` and follow each hop themselves, so every hop is checked
like the first URL (robots.txt and host limits for the crawler, the address policy
for the API). The steps they share live here, once.
"""

from __future__ import annotations

from collections.abc import Mapping

from yarl import URL

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class BadRedirect(ValueError):
    """A ``Location`` that does not lead to an http(s) URL with a host."""


class RedirectLimit(Exception):
    """More hops than allowed, or a hop back to a URL already fetched (a loop)."""

    def __init__(self, hops: int, target: URL) -> None:
        super().__init__(f"{hops} redirects, last to {target}")
        self.hops = hops
        self.target = target


def redirect_location(status: int, headers: Mapping[str, str]) -> str | None:
    """Where a response sends the client, or None when it is no redirect (a 3xx without
    a ``Location`` is an answer like any other)."""
    if status in REDIRECT_STATUSES:
        return headers.get("Location") or None
    return None


def next_hop(base: URL, location: str) -> URL:
    """``location`` resolved against the URL that sent it; BadRedirect unless the result
    is an http(s) URL with a host (a redirect never changes to another scheme)."""
    try:
        hop = base.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise BadRedirect(f"bad redirect {location!r}: {exc}") from None
    if hop.scheme not in ("http", "https") or not hop.host:
        raise BadRedirect(f"redirect to {location!r}")
    return hop


class RedirectChain:
    """The URLs one fetch has been sent through: at most ``limit`` hops, none twice."""

    __slots__ = ("_seen", "limit")

    def __init__(self, start: URL, limit: int) -> None:
        self.limit = limit
        self._seen = {start}

    @property
    def hops(self) -> int:
        """Redirects followed so far."""
        return len(self._seen) - 1

    def follow(self, hop: URL) -> URL:
        """Record one more hop and return it; RedirectLimit past ``limit`` or at a repeat."""
        if len(self._seen) > self.limit or hop in self._seen:
            raise RedirectLimit(len(self._seen), hop)
        self._seen.add(hop)
        return hop
