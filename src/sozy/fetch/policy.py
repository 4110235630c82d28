"""Fetch policies: the etiquette a request follows, as plain data.

A ``FetchPolicy`` says who a request claims to be (a rotating browser string
or the crawl's identifying agent), how many requests may run at once and
which requests share that limit (each origin, each API endpoint, or every
request under the policy together), and how server trouble is met. The
fetcher receives one with each request; sources name the policy their URLs
need (``Candidate.fetch_policy``), so the rule follows where a URL came from,
not its host name. Policies are frozen dataclasses of plain values: they
pickle, compare and travel to other processes unchanged.

The named policies:

- ``web``: ordinary pages and images. Rotating browser agents, ``crawl.per_host``
  requests at once per origin.
- ``api``: JSON APIs. The identifying agent, one request at a time per endpoint
  (MediaWiki's API etiquette: requests in series, not in parallel).
- ``wikimedia_media``: files Commons names (upload.wikimedia.org). The
  identifying agent (Wikimedia's User-Agent policy forbids a browser's agent
  for a bot) and at most 2 downloads at once in all (its robot policy).
- ``wdqs``: the Wikidata Query Service. The identifying agent, one query at a
  time; a server error (a query that ran out of time) is not asked again at
  once, since it would time out again and spend the client's error budget, and
  a 429's Retry-After is waited for up to two minutes (the service asks
  clients to stop for Retry-After or a minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from yarl import URL

# Which requests share a policy's concurrency limit.
Pool = Literal["origin", "endpoint", "policy"]

WIKIMEDIA_MEDIA_CONCURRENCY = 2
# Hosts that serve nothing but Wikimedia's media files: a URL there is Wikimedia media
# whichever source found it (an image search result, a page's <img>).
WIKIMEDIA_MEDIA_HOSTS = frozenset({"upload.wikimedia.org"})


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """How one kind of request is made (see the module docstring)."""

    name: str
    # Send the crawl's identifying User-Agent (crawl.api_user_agent), never a browser's.
    identify: bool = False
    # Requests at once within one pool; 0 = crawl.per_host.
    concurrency: int = 0
    # "origin": one pool per scheme://host:port; "endpoint": per origin and path (one
    # API); "policy": one pool for every request under this policy, whatever the host.
    pool: Pool = "origin"
    # Retry 5xx answers (with backoff); False: a 5xx fails at once.
    retry_server_errors: bool = True
    # The longest Retry-After waited for; 0 = crawl.backoff_max_s.
    max_retry_after_s: float = 0.0

    def pool_key(self, target: URL) -> str:
        """The limiter key of a request to ``target`` under this policy."""
        if self.pool == "policy":
            return f"policy:{self.name}"
        origin = str(target.origin())
        if self.pool == "endpoint":
            return f"{origin}{target.path}"
        return origin


WEB = FetchPolicy("web")
API = FetchPolicy("api", identify=True, concurrency=1, pool="endpoint")
WIKIMEDIA_MEDIA = FetchPolicy("wikimedia_media", identify=True, concurrency=WIKIMEDIA_MEDIA_CONCURRENCY, pool="policy")
WDQS = FetchPolicy(
    "wdqs", identify=True, concurrency=1, pool="endpoint", retry_server_errors=False, max_retry_after_s=120.0
)

POLICIES: dict[str, FetchPolicy] = {p.name: p for p in (WEB, API, WIKIMEDIA_MEDIA, WDQS)}


def policy_for(url: str, named: str | None = None) -> FetchPolicy:
    """The policy for fetching ``url``: the one its source named, else by host (Wikimedia's
    media host), else ``web``."""
    if named is not None:
        return policy_named(named)
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return WEB
    return WIKIMEDIA_MEDIA if host in WIKIMEDIA_MEDIA_HOSTS else WEB


def policy_named(name: str | None) -> FetchPolicy:
    """The policy a candidate names (``None``: ``web``); an unknown name raises ValueError."""
    if name is None:
        return WEB
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown fetch policy {name!r}: one of {', '.join(sorted(POLICIES))}") from None
