"""The crawler's HTTP client: one aiohttp session, polite and bounded.

Every request carries a ``FetchPolicy`` (``sozy.fetch.policy``): the
User-Agent it sends, the pool whose slots it takes and how server trouble is
met. Every request goes through the same steps: robots.txt (cached per origin) →
a slot of its policy's pool (concurrency + spacing) → a global slot → the request with
connect / read / total timeouts → redirects followed by hand (so each hop is
checked against robots.txt and counted against the hop's host) → retries with
backoff on connection errors, 408, 429 and 5xx (Retry-After honoured) → the
X-Robots-Tag header → the body, capped while it streams and, for images,
sniffed from its first bytes. A Retry-After longer than ``backoff_max_s``
is never cut short: that URL fails at once instead of asking again early.

This module keeps the public calls and the loop over hops and retries; one round
trip is ``.request``, robots.txt checks ``.robots_gate``, hop counting
``.redirects``, the session ``.session``.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from sozy.charset import declared_charset
from sozy.config import CrawlSettings

from . import errors
from .agents import UserAgentPool
from .errors import FetchError
from .fetched import Fetched
from .limits import HostLimiter, Limiter
from .local import is_file_url, read_local_image
from .policy import API, WEB, FetchPolicy
from .redirects import RedirectChain, RedirectLimit
from .request import (
    API_ACCEPT,
    API_MAX_BYTES,
    IMAGE_ACCEPT,
    PAGE_ACCEPT,
    RequestKind,
    request_headers,
    request_once,
)
from .responses import Redirect, Retry
from .retry import retry_delay
from .robots import RobotsAnswers, RobotsCache
from .robots_gate import ROBOTS_ACCEPT, RobotsGate, get_robots_txt
from .session import open_session, request_timeout, slow_query_timeout


class Fetcher:
    """Fetches images, pages and API answers for the crawler (an async context manager).

    ``robots`` overrides ``settings.respect_robots``. ``counters`` counts
    requests, retries, redirects, robots.txt loads and every FetchError reason
    (so ``counters["robots_txt"]`` and ``counters["x_robots_tag"]`` are the
    URLs those rules skipped).
    """

    def __init__(
        self,
        settings: CrawlSettings,
        *,
        robots: bool | None = None,
        rng: random.Random | None = None,
        limiter: Limiter | None = None,
        robots_answers: RobotsAnswers | None = None,
    ) -> None:
        self.settings = settings
        self.respect_robots = settings.respect_robots if robots is None else robots
        self.counters: Counter[str] = Counter()
        # Crawled folders by name, for file:<folder>/<path> URLs (see .local).
        self.local_roots: dict[str, Path] = {}
        self._rng = rng or random.Random()
        self.agents = UserAgentPool(settings.api_user_agent, rotate=settings.rotate_user_agents, rng=self._rng)
        # ``limiter``: per-host limits held elsewhere (a cluster's, shared by every node).
        self.limiter: Limiter = limiter or HostLimiter(settings.per_host, settings.per_host_rate)
        # ``robots_answers``: robots.txt answers shared beyond this fetcher (a cluster's nodes).
        shared = robots_answers
        self.robots = RobotsCache(
            self._load_robots if shared is None else lambda origin: shared.answer(origin, self._load_robots)
        )
        self._gate = RobotsGate(self.robots, settings.robots_token, settings.backoff_max_s)
        self._slots = asyncio.Semaphore(settings.concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._timeout: aiohttp.ClientTimeout | None = None
        self._image = RequestKind("image", settings.max_image_bytes, IMAGE_ACCEPT, robots=True, image=True)
        self._page = RequestKind("page", settings.max_page_bytes, PAGE_ACCEPT, robots=True, image=False)

    # -- lifecycle --------------------------------------------------------

    async def __aenter__(self) -> Fetcher:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the session (needs a running event loop); ``async with`` does this."""
        if self._session is None:
            self._timeout = request_timeout(self.settings)
            self._session = open_session(self.settings, self._timeout)

    async def close(self) -> None:
        self.robots.cancel_pending()
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # -- public API -------------------------------------------------------

    async def image(self, url: str, *, referer: str | None = None, policy: FetchPolicy = WEB) -> Fetched:
        """An image: sniffed from its bytes, at most ``max_image_bytes``, robots honoured.

        ``file:`` URLs read local files (same cap and sniffing), unless the
        referer is a web page: a page on the internet cannot point us at local files.
        ``policy``: the etiquette the image's source asks for (``WIKIMEDIA_MEDIA``
        for files Commons named).
        """
        self.counters["image"] += 1
        try:
            if is_file_url(url):
                if referer is not None and not is_file_url(referer):
                    raise FetchError(errors.BAD_URL, url, "file: URL from a web page")
                result = await read_local_image(url, self.settings.max_image_bytes, self.local_roots)
                self.counters["file"] += 1
                return result
            return await self._fetch(url, self._image, policy, referer=referer)
        except FetchError as exc:
            self.counters[exc.reason] += 1
            raise

    async def page(self, url: str, *, policy: FetchPolicy = WEB) -> Fetched:
        """An HTML page (any content, at most ``max_page_bytes``), robots honoured."""
        self.counters["page"] += 1
        try:
            return await self._fetch(url, self._page, policy)
        except FetchError as exc:
            self.counters[exc.reason] += 1
            raise

    async def api_json(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_bytes: int = API_MAX_BYTES,
        policy: FetchPolicy = API,
    ) -> Any:
        """GET a JSON API (Wikidata, Commons, SPARQL) with the identifying User-Agent.

        API endpoints are not crawled pages: robots.txt and X-Robots-Tag do not
        apply (Wikimedia's API etiquette does: one honest User-Agent, one
        request at a time per endpoint, retries that honour Retry-After).
        ``timeout_s`` replaces the read and total timeouts for slow queries
        (SPARQL allows 60 s).
        """
        fetched = await self.api(url, params, headers=headers, timeout_s=timeout_s, max_bytes=max_bytes, policy=policy)
        try:
            return json.loads(fetched.body)
        except ValueError as exc:
            self.counters[errors.BAD_JSON] += 1
            raise FetchError(errors.BAD_JSON, url, str(exc)) from None

    async def api_text(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_bytes: int = API_MAX_BYTES,
        policy: FetchPolicy = API,
    ) -> str:
        """Like ``api_json`` but returns the decoded text (charset from Content-Type, else UTF-8)."""
        fetched = await self.api(url, params, headers=headers, timeout_s=timeout_s, max_bytes=max_bytes, policy=policy)
        return fetched.body.decode(declared_charset(fetched.content_type) or "utf-8", errors="replace")

    async def api(
        self,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        max_bytes: int = API_MAX_BYTES,
        policy: FetchPolicy = API,
    ) -> Fetched:
        """The API's whole answer (status, headers, body), for callers that read its headers."""
        self.counters["api"] += 1
        timeout = None if timeout_s is None else slow_query_timeout(self.settings, timeout_s)
        kind = RequestKind("api", max_bytes, API_ACCEPT, robots=False, image=False, timeout=timeout)
        try:
            return await self._fetch(url, kind, policy, params=params, extra_headers=headers)
        except FetchError as exc:
            self.counters[exc.reason] += 1
            raise

    def hold(self, url: str, seconds: float, policy: FetchPolicy = API) -> None:
        """Start no request of ``url``'s pool under ``policy`` for ``seconds``.

        For answers that ask for a pause inside a successful response (a
        MediaWiki ``maxlag`` error), and for spacing a query service's load.
        """
        target = _parse_http_url(url)
        self.limiter.hold(policy.pool_key(target), seconds, policy.concurrency)

    async def check_robots(self, url: str) -> None:
        """Raise the FetchError a fetch of ``url`` would meet from robots.txt (nothing if allowed)."""
        if self.respect_robots and not is_file_url(url):
            target = _parse_http_url(url)
            await self._gate.delay(url, target, _origin(target))

    # -- the request path -------------------------------------------------

    async def _fetch(
        self,
        url: str,
        kind: RequestKind,
        policy: FetchPolicy,
        *,
        referer: str | None = None,
        params: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Fetched:
        # One flat loop over redirect hops and retries: this is the hot path of
        # a crawl, and every coroutine layer costs on each resumption.
        if self._session is None:
            raise RuntimeError("Fetcher is not open: use `async with Fetcher(settings) as fetcher:`")
        target = _parse_http_url(url)
        if params:
            target = target.extend_query(params)
        final_url = url if not params else str(target)
        agent = self.agents.for_api() if policy.identify else self.agents.for_host()
        headers = request_headers(agent, kind, referer, extra_headers)
        check_robots = self.respect_robots and kind.robots
        robots_token = self.settings.robots_token if check_robots else None
        session = self._session
        max_retry_after = policy.max_retry_after_s or self.settings.backoff_max_s
        chain: RedirectChain | None = None  # made at the first redirect: most fetches have none
        attempt = 0
        while True:
            pool = policy.pool_key(target)
            delay = await self._gate.delay(url, target, _origin(target)) if check_robots else 0.0
            try:
                # Host slot first, then the global one: a request queued behind a busy
                # host must not hold a global slot other hosts could use.
                async with self.limiter.slot(pool, delay, policy.concurrency), self._slots:
                    self.counters["requests"] += 1
                    fetched = await request_once(
                        session,
                        url,
                        final_url,
                        target,
                        kind,
                        headers,
                        timeout=self._timeout,
                        robots_token=robots_token,
                        retry_server_errors=policy.retry_server_errors,
                    )
                self.counters["bytes"] += len(fetched.body)
                return fetched
            except Redirect as hop:
                self.counters["redirects"] += 1
                if chain is None:
                    chain = RedirectChain(target, self.settings.max_redirects)
                try:
                    target = chain.follow(hop.target)
                except RedirectLimit as exc:
                    raise FetchError(errors.REDIRECT_LIMIT, url, str(exc)) from None
                final_url = str(target)
                attempt = 0
            except Retry as retry:
                refused = retry.refused_wait(max_retry_after)
                if refused is not None:
                    # Asking again sooner than the server said would not honour it, and
                    # waiting longer would stall the crawl: give up on this URL for now
                    # (the crawl records the failure) and pause the host as long as we may.
                    self.limiter.hold(pool, max_retry_after, policy.concurrency)
                    raise refused from None
                if attempt >= self.settings.retries:
                    raise retry.error from None
                wait = retry_delay(attempt, retry.retry_after, self.settings.backoff_base_s, max_retry_after, self._rng)
                if retry.retry_after is not None:
                    # The server asked the whole host to slow down, not just this URL.
                    self.limiter.hold(pool, wait, policy.concurrency)
                self.counters["retries"] += 1
                attempt += 1
                await asyncio.sleep(wait)

    async def _load_robots(self, origin: str) -> tuple[int, bytes]:
        """robots.txt's final status and body (redirects followed, as RFC 9309 asks)."""
        session = self._session
        assert session is not None
        self.counters["robots_fetches"] += 1
        headers = {"User-Agent": self.agents.for_api(), "Accept": ROBOTS_ACCEPT}
        async with self.limiter.slot(origin), self._slots:
            return await get_robots_txt(session, origin, headers)


def _parse_http_url(url: str) -> URL:
    try:
        target = URL(url)
    except (ValueError, TypeError) as exc:
        raise FetchError(errors.BAD_URL, url, str(exc)) from None
    if target.scheme not in ("http", "https"):
        raise FetchError(errors.BAD_URL, url, f"unsupported scheme {target.scheme!r}")
    if not target.host:
        raise FetchError(errors.BAD_URL, url, "no host")
    return target


def _origin(target: URL) -> str:
    """scheme://host[:port], the unit robots.txt and per-host limits apply to."""
    return str(target.origin())
