"""Photos on ordinary web pages, following same-site links breadth-first."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sozy.config import CrawlSettings
from sozy.fetch import Fetched, Fetcher, FetchError
from sozy.records import Candidate

from .htmlpage import ParsedPage, decode_html, parse_page
from .links import normalize_http_url, site_of

log = logging.getLogger(__name__)

SOURCE = "pages"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
# Parsing a big page blocks for a while; beyond this size it runs in a thread.
_THREAD_PARSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Visit:
    url: str
    site: str | None  # links are followed only within this site; None: the page's own


@dataclass(frozen=True, slots=True)
class _Visited:
    url: str  # after redirects
    site: str | None
    page: ParsedPage


class PageSource:
    """Image candidates from HTML pages and the same-site pages they link to.

    Each ``<img>`` gives its largest ``srcset`` candidate (or ``src``);
    ``og:image`` / ``twitter:image`` meta images too. Links are followed
    breadth-first to ``settings.page_depth`` (0: the start pages only) within
    the start page's registrable domain, at most ``settings.max_pages`` pages
    per call. ``<meta name="robots">`` ``nofollow`` / ``noimageindex`` /
    ``noai`` are honoured when ``settings.respect_robots`` is on (robots.txt
    and ``X-Robots-Tag`` are the fetcher's job). A page that fails is counted
    in ``counters`` and logged; the traversal goes on.
    """

    def __init__(self, fetcher: Fetcher, settings: CrawlSettings) -> None:
        self.fetcher = fetcher
        self.settings = settings
        self.counters: collections.Counter[str] = collections.Counter()

    async def candidates(self, start_urls: Sequence[str]) -> AsyncIterator[Candidate]:
        """Yield each image found once per call, in breadth-first page order."""
        seen_pages: set[str] = set()
        seen_images: set[str] = set()
        frontier: list[_Visit] = []
        for raw in start_urls:
            url = normalize_http_url(raw.strip())
            if url is None:
                log.warning("page source: not an http(s) URL, skipped: %r", raw)
                self.counters["page_bad_url"] += 1
            elif url not in seen_pages:
                seen_pages.add(url)
                frontier.append(_Visit(url, None))

        budget = self.settings.max_pages
        limit = asyncio.Semaphore(self.settings.per_host)
        depth = 0
        while frontier:
            if budget <= 0:
                self.counters["page_skipped_max_pages"] += len(frontier)
                log.info(
                    "page source: max_pages (%d) reached, %d pages not visited", self.settings.max_pages, len(frontier)
                )
                break
            level, frontier = frontier[:budget], frontier[budget:]
            budget -= len(level)
            tasks = [asyncio.create_task(self._visit(visit, limit)) for visit in level]
            try:
                # Awaited in order, so the output does not depend on timing.
                for task in tasks:
                    visited = await task
                    if visited is None:
                        continue
                    for image in visited.page.images:
                        if image.url in seen_images:
                            continue
                        seen_images.add(image.url)
                        self.counters["page_images"] += 1
                        yield Candidate(
                            image_url=image.url,
                            source=SOURCE,
                            page_url=visited.url,
                            alt=image.alt,
                            page_title=visited.page.title,
                        )
                    if depth < self.settings.page_depth:
                        frontier.extend(self._next_pages(visited, seen_pages))
            finally:
                for task in tasks:
                    task.cancel()
            depth += 1

    def _next_pages(self, visited: _Visited, seen_pages: set[str]) -> list[_Visit]:
        if self.settings.respect_robots and not visited.page.links_allowed:
            self.counters["page_meta_nofollow"] += 1
            return []
        found: list[_Visit] = []
        for link in visited.page.links:
            if link in seen_pages:
                continue
            if site_of(link) != visited.site:
                continue
            seen_pages.add(link)
            found.append(_Visit(link, visited.site))
        return found

    async def _visit(self, visit: _Visit, limit: asyncio.Semaphore) -> _Visited | None:
        """The page parsed, or None when it failed or is skipped (counted and logged)."""
        try:
            async with limit:
                fetched = await self.fetcher.page(visit.url)
            return await self._read(visit, fetched)
        except FetchError as exc:
            self.counters[f"page_failed_{exc.reason}"] += 1
            log.warning("page source: %s failed: %s", visit.url, exc.reason)
        except Exception:  # a broken page never stops the traversal
            self.counters["page_failed_error"] += 1
            log.exception("page source: %s failed", visit.url)
        return None

    async def _read(self, visit: _Visit, fetched: Fetched) -> _Visited | None:
        final_url = normalize_http_url(fetched.final_url) or visit.url
        site = visit.site if visit.site is not None else site_of(final_url)
        if visit.site is not None and site_of(final_url) != visit.site:
            self.counters["page_offsite_redirect"] += 1
            log.info("page source: %s redirected off-site to %s, skipped", visit.url, final_url)
            return None
        content_type = (fetched.content_type or "").split(";")[0].strip().lower()
        if content_type and content_type not in _HTML_TYPES:
            self.counters["page_not_html"] += 1
            log.info("page source: %s is %s, not HTML", visit.url, content_type)
            return None
        page = await self._parse(fetched.body, fetched.content_type, final_url)
        self.counters["pages"] += 1
        if self.settings.respect_robots and not page.images_allowed:
            self.counters["page_meta_noimageindex"] += 1
            page.images.clear()
        return _Visited(final_url, site, page)

    async def _parse(self, body: bytes, content_type: str | None, url: str) -> ParsedPage:
        token = self.settings.robots_token

        def parse() -> ParsedPage:
            return parse_page(decode_html(body, content_type), url, robots_token=token)

        if len(body) > _THREAD_PARSE_BYTES:
            return await asyncio.to_thread(parse)
        return parse()
