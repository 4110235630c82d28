"""Opt-in: photos of a person from an image search engine's results page.

The results page is scraped, which is fragile (the markup changes without
notice) and may be against the engine's terms of service and robots.txt;
it stays off unless the operator asks for it (``--search-engine``). The
parser reads Bing-style result anchors, ``<a class="iusc" m="{json}">``,
whose JSON carries ``murl`` (the media URL) and ``purl`` (the page it is on).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from html.parser import HTMLParser
from typing import Protocol
from urllib.parse import urlencode

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher, FetchError
from sozy.records import Candidate

from .htmlpage import decode_html
from .htmltext import clean_text
from .links import normalize_http_url

log = logging.getLogger(__name__)

SOURCE = "search"
QID = re.compile(r"^[Qq][1-9]\d*$")


class _Person(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def label(self) -> str | None: ...


class PersonResolver(Protocol):
    """What turns a Q-id into a person with a label (``WikidataNames``)."""

    async def person(self, name: str) -> _Person | None: ...


class _ResultParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.metadata: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "a":
            return
        a = dict(attrs)
        if "iusc" in (a.get("class") or "").split() and a.get("m"):
            self.metadata.append(a["m"] or "")


def parse_results(html: str, name: str | None, *, limit: int | None = None) -> list[Candidate]:
    """Candidates from a results page, in page order, each media URL once.

    Anchors whose ``m`` is not JSON, or whose ``murl`` is not an http(s)
    URL, are skipped. ``purl`` becomes the page URL when it is http(s).
    """
    parser = _ResultParser()
    parser.feed(html)
    parser.close()
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for raw in parser.metadata:
        try:
            meta = json.loads(raw)
        except ValueError:
            log.debug("image search: result metadata is not JSON: %.80r", raw)
            continue
        if not isinstance(meta, dict):
            continue
        media = meta.get("murl")
        if not isinstance(media, str) or normalize_http_url(media) is None or media in seen:
            continue
        seen.add(media)
        page = meta.get("purl")
        page_url = page if isinstance(page, str) and normalize_http_url(page) else None
        title = meta.get("t")
        candidates.append(
            Candidate(
                image_url=media,
                source=SOURCE,
                page_url=page_url,
                name=name,
                alt=clean_text(title) if isinstance(title, str) else None,
            )
        )
        if limit is not None and len(candidates) >= limit:
            break
    return candidates


class ImageSearch:
    """Look a name up on an image search engine (``settings.search_url``).

    Up to ``settings.images_per_person`` results per name, named after the
    query; the crawler's naming rule then decides per face. Fetched as an
    ordinary page, so robots.txt is honoured when ``respect_robots`` is on
    (a disallowed search page raises the fetcher's ``robots_txt`` error;
    ``refusal()`` asks before any lookup, so the crawl can say so once).
    """

    def __init__(self, fetcher: Fetcher, settings: CrawlSettings) -> None:
        self.fetcher = fetcher
        self.settings = settings

    def results_url(self, name: str) -> str:
        separator = "&" if "?" in self.settings.search_url else "?"
        return f"{self.settings.search_url}{separator}{urlencode({'q': name})}"

    async def lookup(self, name: str, *, person_id: str | None = None) -> list[Candidate]:
        """Candidates for ``name`` (carrying ``person_id`` when known); raises the fetcher's
        error when the page cannot be had."""
        query = " ".join(name.split())
        if not query:
            return []
        fetched = await self.fetcher.page(self.results_url(query))
        html = decode_html(fetched.body, fetched.content_type)
        found = parse_results(html, query, limit=self.settings.images_per_person)
        if not found:
            log.info("image search: no results parsed for %r (markup changed?)", query)
        if person_id is not None:
            found = [dataclasses.replace(c, person_id=person_id) for c in found]
        return found

    async def lookup_person(self, name: str, people: PersonResolver) -> list[Candidate]:
        """Like ``lookup``, but a Q-id (``--top``, or a Q-id in a names file) is searched by the
        person's label, and the results carry the Q-id as ``person_id``: a search engine knows
        people by name, not by Wikidata id. A Q-id that names nobody gives ``[]``."""
        if not QID.match(name.strip()):
            return await self.lookup(name)
        person = await people.person(name)
        if person is None or not person.label:
            log.info("image search: %s has no label to search for", name.strip())
            return []
        return await self.lookup(person.label, person_id=person.id)

    async def refusal(self) -> str | None:
        """Why robots.txt keeps us off the results page (None when it lets us in)."""
        url = self.results_url("Sozy")
        try:
            await self.fetcher.check_robots(url)
        except FetchError as exc:
            if exc.reason in ("robots_txt", "robots_unavailable"):
                page = url.split("?")[0]
                return f"{exc.reason}: the robots.txt of {page} keeps {self.settings.robots_token} out ({exc.detail})"
            raise
        return None
