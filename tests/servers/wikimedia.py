"""Fake Wikidata API, Commons API, query service, image search and media host, on 127.0.0.1.

Two hosts, as in production: an API host (Wikidata's and Commons' Action
APIs, the SPARQL endpoint and a Bing-shaped image search under their own
paths) and a separate media host (``wikimedia_media.MediaHost``, the stand-in
for upload.wikimedia.org) with its own robots.txt and agent rules. They serve
the small world of ``wikimedia_world`` in the real services' shapes and with
their quirks and limits:

- ``wbsearchentities`` / ``wbgetentities`` (Wikibase JSON: labels, claims with
  ``mainsnak.datavalue``, ranks, sitelinks; ``missing`` entities; a merged item
  answered under the id asked for, ``id`` = the target, ``redirects {from, to}``;
  ``error`` objects)
- ``maxlag``: with ``lagged(n)``, the next ``n`` calls that send ``maxlag`` get
  HTTP 200 with ``error.code = "maxlag"`` and a ``Retry-After`` header
- Commons ``prop=imageinfo`` (``thumburl`` at the next standard width, or the
  original when that is not narrower; ``extmetadata`` with licence, licence
  URL, artist, credit, attribution-required and restrictions; ``normalized``;
  negative ids for missing pages; ``continue`` when an answer carries more
  metadata than ``imageinfo_per_answer`` files) and ``list=categorymembers``
- the query service (``wikimedia_sparql``): expensive queries time out
  (HTTP 500, ``TimeoutException``), more than ``sparql_error_limit`` errors a
  minute earn 429 with Retry-After, and ``throttle_sparql(n)`` forces 429s
- the agent rules of Wikimedia's edge: no User-Agent or a library's default
  one is refused with 403, on both hosts

``traffic`` records every request (service, params, headers) and the peak of
concurrent requests per service (``wikidata``, ``commons``, ``sparql``,
``search``, ``upload``), so tests can check the User-Agent, the parameters and
the etiquette; ``traffic.delays[service]`` makes each request of a service
take that long, so overlap shows.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sozy.config import CrawlSettings

from .celebrity import Photo
from .wikimedia_json import (
    api_error,
    entity_json,
    extmetadata,
    file_title,
    json_response,
    page_id,
    search_hit,
)
from .wikimedia_media import MediaHost, refuses_agent
from .wikimedia_search import SearchPage
from .wikimedia_sparql import evaluate
from .wikimedia_traffic import RecordedRequest, Traffic
from .wikimedia_world import (
    CATEGORIES,
    ENTITIES,
    FILES,
    REDIRECTS,
    FakeEntity,
    FakeFile,
    people_with_images,
    thumb_step,
)

__all__ = [
    "CATEGORIES",
    "ENTITIES",
    "FILES",
    "REDIRECTS",
    "FakeEntity",
    "FakeFile",
    "RecordedRequest",
    "WikimediaServer",
    "people_with_images",
    "wikimedia",
    "wikimedia_server",
]

WIKIDATA_PATH = "/w/api.php"
COMMONS_PATH = "/commons/w/api.php"
SPARQL_PATH = "/sparql"
SEARCH_PATH = "/images/search"
_SERVICES = {WIKIDATA_PATH: "wikidata", COMMONS_PATH: "commons", SPARQL_PATH: "sparql", SEARCH_PATH: "search"}


class WikimediaServer:
    """The fake services; ``settings()`` points a CrawlSettings at them."""

    def __init__(self, faces_dir: Path) -> None:
        self.entities = {e.qid: e for e in ENTITIES}
        # Commons categories by name (a test may file a photo under the wrong person, as Commons users do).
        self.categories = dict(CATEGORIES)
        self.traffic = Traffic()
        self.media = MediaHost(Path(faces_dir), self.traffic)
        self.files = self.media.files
        self.search = SearchPage(self.media, self.description_url, lambda: self.base_url)
        # Set to (code, info) to make the Wikidata API answer with a MediaWiki error object.
        self.wikidata_error: tuple[str, str] | None = None
        self.robots_txt = "User-agent: *\nAllow: /\n"
        # Files with imageinfo per answer before it is cut with ``continue`` (extmetadata is heavy).
        self.imageinfo_per_answer = 4
        # The query service: rows a query may gather before it times out, errors a minute before 429s.
        self.sparql_max_rows: int | None = None
        self.sparql_error_limit = 30
        self.sparql_retry_after = 1
        self._sparql_errors: list[float] = []
        self._sparql_throttled = 0
        self._lagged = 0
        self._lag_retry_after = 1
        self._server: TestServer | None = None

    # -- knobs --

    def lagged(self, answers: int, retry_after: int = 1) -> None:
        """The next ``answers`` API calls that send ``maxlag`` are told the servers lag."""
        self._lagged, self._lag_retry_after = answers, retry_after

    def throttle_sparql(self, answers: int) -> None:
        """The next ``answers`` queries get 429 with Retry-After ``sparql_retry_after``."""
        self._sparql_throttled = answers

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.traffic.requests

    def requests_to(self, service: str) -> list[RecordedRequest]:
        return self.traffic.to(service)

    # -- addresses --

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("wikimedia server not started")
        return f"http://127.0.0.1:{self._server.port}"

    def overrides(self) -> dict[str, str]:
        """Dotted settings keys for ``Settings.replace`` / ``load_settings(overrides=...)``."""
        return {
            "crawl.wikidata_api": self.base_url + WIKIDATA_PATH,
            "crawl.commons_api": self.base_url + COMMONS_PATH,
            "crawl.sparql_url": self.base_url + SPARQL_PATH,
            "crawl.search_url": self.base_url + SEARCH_PATH,
        }

    def settings(self, base: CrawlSettings | None = None, **changes: Any) -> CrawlSettings:
        endpoints = {k.split(".", 1)[1]: v for k, v in self.overrides().items()}
        return dataclasses.replace(base or CrawlSettings(), **{**endpoints, **changes})

    def file(self, name: str) -> FakeFile:
        return self.files[file_title(name)]

    def original_url(self, name: str) -> str:
        return self.media.original_url(self.file(name))

    def thumb_url(self, name: str, width: int) -> str:
        """The URL imageinfo gives for ``iiurlwidth=width`` (see ``MediaHost.thumb_url``)."""
        return self.media.thumb_url(self.file(name), width)

    def description_url(self, name: str | FakeFile) -> str:
        f = name if isinstance(name, FakeFile) else self.file(name)
        return f"{self.base_url}/wiki/{quote(f.title.replace(' ', '_'), safe=':')}"

    def photo_of(self, url: str) -> Photo | None:
        return self.media.photo_of(url)

    def search_results(self, query: str) -> list[tuple[str, str]]:
        return self.search.search_results(query)

    def search_page(self, query: str) -> str:
        return self.search.search_page(query)

    # -- lifecycle --

    async def start(self) -> None:
        await self.media.start()
        app = web.Application(
            middlewares=[
                self.traffic.middleware(lambda request: _SERVICES.get(request.path, "other")),
                _agent_rules,
            ]
        )
        app.router.add_route("*", WIKIDATA_PATH, self._wikidata)
        app.router.add_route("*", COMMONS_PATH, self._commons)
        app.router.add_route("*", SPARQL_PATH, self._sparql)
        app.router.add_get(SEARCH_PATH, self.search.handle)
        app.router.add_get("/robots.txt", self._robots)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None
        await self.media.close()

    async def _robots(self, request: web.Request) -> web.Response:
        return web.Response(text=self.robots_txt)

    def _lag(self, params: dict[str, str]) -> web.Response | None:
        """The maxlag answer, while the fake servers lag and the client asked with maxlag."""
        if not self._lagged or "maxlag" not in params:
            return None
        self._lagged -= 1
        lag = int(params["maxlag"]) + 2
        error = api_error("maxlag", f"Waiting for 10.64.48.1: {lag} seconds lagged.")
        error["error"].update(host="10.64.48.1", lag=lag, type="db")
        response = json_response(error)
        response.headers.update({"Retry-After": str(self._lag_retry_after), "X-Database-Lag": str(lag)})
        return response

    # -- Wikidata --

    async def _wikidata(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if (lagging := self._lag(params)) is not None:
            return lagging
        if self.wikidata_error is not None:
            code, info = self.wikidata_error
            return json_response(api_error(code, info))
        action = params.get("action")
        if action == "wbsearchentities":
            return json_response(self._search_entities(params))
        if action == "wbgetentities":
            return json_response(self._get_entities(params))
        return json_response(api_error("badvalue", f'Unrecognized value for parameter "action": {action}.'))

    def _search_entities(self, params: dict[str, str]) -> dict[str, Any]:
        query = params.get("search", "")
        if not query:
            return api_error("missingparam", 'The "search" parameter must be set.')
        limit = min(50, int(params.get("limit", "7")))
        offset = int(params.get("continue", "0"))
        wanted = query.casefold()
        hits = []
        for entity in self.entities.values():
            for kind, term in [("label", entity.label), *(("alias", a) for a in entity.aliases)]:
                if term.casefold().startswith(wanted):
                    hits.append(search_hit(entity, kind, term, self.base_url))
                    break
        page = hits[offset : offset + limit]
        answer: dict[str, Any] = {"searchinfo": {"search": query}, "search": page}
        if offset + limit < len(hits):
            answer["search-continue"] = offset + limit
        answer["success"] = 1
        return answer

    def _get_entities(self, params: dict[str, str]) -> dict[str, Any]:
        ids = [i for i in params.get("ids", "").split("|") if i]
        if not ids:
            return api_error("param-missing", 'Either provide the item "ids" or pairs of "sites" and "titles".')
        if len(ids) > 50:
            return api_error("toomanyvalues", 'Too many values supplied for parameter "ids". The limit is 50.')
        props = set(params.get("props", "info|sitelinks|aliases|labels|descriptions|claims|datatype").split("|"))
        languages = set(params["languages"].split("|")) if params.get("languages") else None
        entities: dict[str, Any] = {}
        for qid in ids:
            if not re.fullmatch(r"Q[1-9]\d*", qid):
                return api_error("no-such-entity", f'Could not find an entity with the ID "{qid}".')
            target = REDIRECTS.get(qid) if params.get("redirects", "yes") == "yes" else None
            entity = self.entities.get(target or qid)
            if entity is None:
                entities[qid] = {"id": qid, "missing": ""}
                continue
            data = entity_json(entity, props, languages)
            if target is not None:
                # Answered under the id asked for; ``id`` names the item it was merged into.
                data = {
                    "type": data.pop("type"),
                    "id": data.pop("id"),
                    "redirects": {"from": qid, "to": target},
                    **data,
                }
            entities[qid] = data
        return {"entities": entities, "success": 1}

    # -- Commons --

    async def _commons(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if (lagging := self._lag(params)) is not None:
            return lagging
        if params.get("action") != "query":
            return json_response(
                api_error("badvalue", f'Unrecognized value for parameter "action": {params.get("action")}.')
            )
        if params.get("list") == "categorymembers":
            return json_response(self._category_members(params))
        if params.get("prop") == "imageinfo" and params.get("titles"):
            return json_response(self._imageinfo(params))
        return json_response({"batchcomplete": ""})

    def _category_members(self, params: dict[str, str]) -> dict[str, Any]:
        title = params.get("cmtitle", "")
        if not title.startswith("Category:"):
            return api_error("invalidcategory", "The category name you entered is not valid.")
        limit = min(500, int(params.get("cmlimit", "10")))
        start = int(params.get("cmcontinue", "file|0").split("|")[-1])
        names = self.categories.get(title[len("Category:") :].replace("_", " "), ())
        if params.get("cmtype", "page|subcat|file") not in ("file", "page|subcat|file"):
            names = ()
        members = [{"pageid": page_id(name), "ns": 6, "title": f"File:{name}"} for name in names[start : start + limit]]
        answer: dict[str, Any] = {}
        if start + limit < len(names):
            answer["continue"] = {"cmcontinue": f"file|{start + limit}", "continue": "-||"}
        else:
            answer["batchcomplete"] = ""
        answer["query"] = {"categorymembers": members}
        return answer

    def _imageinfo(self, params: dict[str, str]) -> dict[str, Any]:
        titles = params["titles"].split("|")
        if len(titles) > 50:
            return api_error("toomanyvalues", 'Too many values supplied for parameter "titles". The limit is 50.')
        iiprop = set(params.get("iiprop", "timestamp|user").split("|"))
        width = int(params["iiurlwidth"]) if params.get("iiurlwidth") else None
        meta_filter = set(params["iiextmetadatafilter"].split("|")) if params.get("iiextmetadatafilter") else None
        # Pages are answered in title order; ``iicontinue`` names the first one still owed.
        canonical = sorted({file_title(t) for t in titles})
        first = 0
        if "iicontinue" in params:
            resume = file_title(params["iicontinue"].split("|")[0])
            first = canonical.index(resume) if resume in canonical else len(canonical)
        served = {t for t in canonical[first:] if t in self.files}
        served = set(sorted(served)[: self.imageinfo_per_answer]) if "extmetadata" in iiprop else served
        normalized, pages = [], {}
        missing_id = 0
        for title in titles:
            name = file_title(title)
            if name != title:
                normalized.append({"from": title, "to": name})
            found = self.files.get(name)
            if found is None:
                missing_id -= 1
                pages[str(missing_id)] = {"ns": 6, "title": name, "missing": "", "known": ""}
                continue
            page: dict[str, Any] = {"pageid": page_id(found.name), "ns": 6, "title": name, "imagerepository": "local"}
            if name in served:
                page["imageinfo"] = [self._info(found, iiprop, width, meta_filter)]
            pages[str(page_id(found.name))] = page
        answer: dict[str, Any] = {}
        owed = [t for t in canonical[first:] if t in self.files and t not in served]
        if owed:
            key = owed[0][len("File:") :].replace(" ", "_")
            answer["continue"] = {"iicontinue": f"{key}|20130101000000", "continue": "||"}
        else:
            answer["batchcomplete"] = ""
        answer["query"] = {"normalized": normalized, "pages": pages} if normalized else {"pages": pages}
        return answer

    def _info(self, f: FakeFile, iiprop: set[str], width: int | None, meta_filter: set[str] | None) -> dict[str, Any]:
        w, h = self.media.width_of(f)
        info: dict[str, Any] = {}
        if "size" in iiprop or "dimensions" in iiprop:
            info.update(size=w * h // 4, width=w, height=h)
        if "url" in iiprop:
            if width is not None:
                shown = min(w, thumb_step(width)) if f.photo else thumb_step(width)
                info.update(thumburl=self.media.thumb_url(f, width), thumbwidth=shown, thumbheight=round(h * shown / w))
            info.update(
                url=self.media.original_url(f),
                descriptionurl=self.description_url(f),
                descriptionshorturl=f"{self.base_url}/w/index.php?curid={page_id(f.name)}",
            )
        if "mime" in iiprop:
            info["mime"] = f.mime_type
        if "extmetadata" in iiprop:
            meta = extmetadata(f)
            info["extmetadata"] = {k: v for k, v in meta.items() if meta_filter is None or k in meta_filter}
        return info

    # -- SPARQL --

    async def _sparql(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        self._sparql_errors = [t for t in self._sparql_errors if now - t < 60]
        if self._sparql_throttled or len(self._sparql_errors) >= self.sparql_error_limit:
            self._sparql_throttled = max(0, self._sparql_throttled - 1)
            return web.Response(
                status=429,
                text="Too Many Requests - Please retry in 1 seconds.",
                headers={"Retry-After": str(self.sparql_retry_after)},
            )
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        answer = evaluate(params.get("query", ""), self.entities.values(), self.sparql_max_rows)
        if answer.status >= 400:
            self._sparql_errors.append(now)
        return web.Response(
            status=answer.status, text=answer.body, content_type=answer.content_type, headers=answer.headers
        )


@web.middleware
async def _agent_rules(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Wikimedia's edge refuses requests without a User-Agent or with a library's default one."""
    if refuses_agent(request.headers.get("User-Agent", "")):
        raise web.HTTPForbidden(text="Please set a user-agent and respect our robot policy https://w.wiki/4wJS.")
    return await handler(request)


@asynccontextmanager
async def wikimedia_server(faces_dir: Path) -> AsyncIterator[WikimediaServer]:
    """Serve the fake Wikimedia services on ephemeral 127.0.0.1 ports for the block."""
    server = WikimediaServer(faces_dir)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def wikimedia(faces_dir: Path) -> AsyncIterator[WikimediaServer]:
    """The fake services for one test; import this name into a conftest or test module to use it."""
    async with wikimedia_server(faces_dir) as server:
        yield server
