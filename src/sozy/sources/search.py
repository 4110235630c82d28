"""Opt-in: photos of a person from an image search engine's results page.

The results page is scraped, which is fragile (the markup changes without
notice) and may be against the engine's terms of service and robots.txt;
it stays off unless the operator asks for it (``--search-engine``). The
parser reads Bing-style result anchors, ``<a class="iusc" m="{json}">``,
whose JSON carries ``murl`` (the media URL) and ``purl`` (the page it is on).
"""

from __future__ import annotations

import json
import logging
from html.parser import HTMLParser
from urllib.parse import urlencode

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher
from sozy.records import Candidate

from .htmlpage import decode_html
from .htmltext import clean_text
from .links import normalize_http_url

log = logging.getLogger(__name__)

SOURCE = "search"


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
    (a disallowed search page raises the fetcher's ``robots_txt`` error).
    """

    def __init__(self, fetcher: Fetcher, settings: CrawlSettings) -> None:
        self.fetcher = fetcher
        self.settings = settings

    def results_url(self, name: str) -> str:
        separator = "&" if "?" in self.settings.search_url else "?"
        return f"{self.settings.search_url}{separator}{urlencode({'q': name})}"

    async def lookup(self, name: str) -> list[Candidate]:
        """Candidates for ``name``; raises the fetcher's error when the page cannot be had."""
        query = " ".join(name.split())
        if not query:
            return []
        fetched = await self.fetcher.page(self.results_url(query))
        html = decode_html(fetched.body, fetched.content_type)
        found = parse_results(html, query, limit=self.settings.images_per_person)
        if not found:
            log.info("image search: no results parsed for %r (markup changed?)", query)
        return found
