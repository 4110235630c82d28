"""Fake Wikidata API, Commons API, SPARQL endpoint and image search, on 127.0.0.1.

One aiohttp app, four services under their own paths, serving a small world
built from examples/faces: six people with Q-ids, P18 images and P373
Commons categories, Commons files whose thumbnail URLs point at this
server's image paths (the real photos, resized to the width asked), and a
few traps (a rose cultivar named like an actress, a deprecated P18, an SVG in
a category, a human without photos, a person whose photos are only in a
category). Responses follow the shapes of the real APIs:

- ``wbsearchentities`` / ``wbgetentities`` (Wikibase JSON: labels, claims with
  ``mainsnak.datavalue``, ranks, sitelinks; ``missing`` entities; ``error``)
- Commons ``action=query`` with ``prop=imageinfo`` (``thumburl``,
  ``descriptionurl``, ``extmetadata`` entries ``{"value", "source"}``,
  ``normalized``, negative ids for missing pages) and ``list=categorymembers``
  (with ``continue``)
- SPARQL 1.1 JSON results (``head.vars``, ``results.bindings``)
- a Bing-style results page (``a.iusc`` anchors with ``m`` JSON)

Every request is recorded (service, params, headers) so tests can check the
User-Agent and the parameters sent. Q76 (Obama) and Q6279 (Biden) are the
real ids; the others are made up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sozy.config import CrawlSettings

from .celebrity import Photo, PhotoRenderer, read_manifest

WIKIDATA_PATH = "/w/api.php"
COMMONS_PATH = "/commons/w/api.php"
SPARQL_PATH = "/sparql"
SEARCH_PATH = "/images/search"
UPLOAD_PREFIX = "/wikipedia/commons"


# --- the world -----------------------------------------------------------------------


@dataclass(frozen=True)
class FakeFile:
    """A Commons file: its title (without "File:") and the photo it shows."""

    name: str
    photo: str | None  # path under examples/faces; None for non-photos (SVG)
    license: str = "CC BY-SA 4.0"
    artist_html: str = '<a href="//commons.wikimedia.org/wiki/User:Example" title="User:Example">Example</a>'
    mime: str | None = None  # None: from the photo's extension

    @property
    def title(self) -> str:
        return f"File:{self.name}"

    @property
    def key(self) -> str:
        """The name as it appears in URLs: spaces as underscores."""
        return self.name.replace(" ", "_")

    @property
    def mime_type(self) -> str:
        if self.mime:
            return self.mime
        return "image/png" if (self.photo or "").lower().endswith(".png") else "image/jpeg"


@dataclass(frozen=True)
class FakeEntity:
    qid: str
    label: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    instance_of: str = "Q5"  # Q5 = human
    images: tuple[str, ...] = ()  # P18, normal rank
    preferred_images: tuple[str, ...] = ()  # P18, preferred rank (listed after the normal ones)
    deprecated_images: tuple[str, ...] = ()  # P18, deprecated rank (listed first)
    category: str | None = None  # P373
    occupations: tuple[str, ...] = ()  # P106
    sitelinks: int = 0


_SOUZA = '<a href="https://en.wikipedia.org/wiki/Pete_Souza" class="extiw">Pete Souza</a>'
FILES: tuple[FakeFile, ...] = (
    FakeFile("President Barack Obama.jpg", "obama/obama.jpg", "Public domain", _SOUZA),
    FakeFile("Barack Obama 2012.jpg", "obama/obama2.jpg", "Public domain", _SOUZA),
    FakeFile("Barack Obama speaking.jpg", "obama/obama3.jpg", "CC BY 2.0",
             '<bdi><a href="https://www.flickr.com/people/x">Gage Skidmore</a></bdi> from Peoria, AZ'),
    FakeFile("Obama 2013 portrait.jpg", "obama/obama4.jpg"),
    FakeFile("Barack Obama low resolution.jpg", "obama/obama-240p.jpg"),  # the deprecated P18
    FakeFile("Barack Obama signature.svg", None, "Public domain", "Barack Obama", "image/svg+xml"),
    FakeFile("Obama and Biden 2009.jpg", "group/biden-and-obama.jpg", "Public domain", _SOUZA),
    FakeFile("Obama, Biden and a staffer.jpg", "group/obama-biden-and-one-more.jpg"),
    FakeFile("Joe Biden presidential portrait.jpg", "biden/biden.jpg", "Public domain",
             "Adam Schultz &amp; the White House"),
    FakeFile("Joe Biden 2013.jpg", "biden/biden2.jpg"),
    FakeFile("Kit Harington 2012.jpg", "kit_harington/kit-harington1.jpg", "CC BY-SA 3.0"),
    FakeFile("Kit Harington at Comic-Con.jpg", "kit_harington/kit-harington2.jpg"),
    FakeFile("Kit Harington 2016.jpg", "kit_harington/kit-harington3.jpg"),
    FakeFile("Kit Harington and Rose Leslie.jpg", "group/kit-harington-and-rose-leslie.jpg"),
    FakeFile("Rose Leslie 2014.jpg", "rose_leslie/rose-leslie1.jpg", "CC BY 2.0"),
    FakeFile("Rose Leslie 2019.jpg", "rose_leslie/rose-leslie2.jpg"),
    FakeFile("Lin-Manuel Miranda.png", "lin_manuel_miranda/lin-manuel-miranda.png", "CC BY 4.0"),
    FakeFile("Alex Lacamoire 2016.jpg", "alex_lacamoire/alex-lacamoire1.jpg"),
    FakeFile("Alex Lacamoire at the piano.jpg", "alex_lacamoire/alex-lacamoire2.jpg"),
    FakeFile("Alex Lacamoire.png", "alex_lacamoire/alex-lacamoire3.png"),
)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "Barack Obama": (
        "Barack Obama 2012.jpg", "Barack Obama signature.svg", "Barack Obama speaking.jpg",
        "Obama 2013 portrait.jpg", "Obama and Biden 2009.jpg", "President Barack Obama.jpg",
    ),
    "Joe Biden": ("Joe Biden 2013.jpg", "Obama and Biden 2009.jpg", "Obama, Biden and a staffer.jpg"),
    "Kit Harington": ("Kit Harington at Comic-Con.jpg", "Kit Harington 2016.jpg", "Kit Harington and Rose Leslie.jpg"),
    "Rose Leslie": ("Kit Harington and Rose Leslie.jpg", "Rose Leslie 2019.jpg"),
    "Alex Lacamoire": ("Alex Lacamoire 2016.jpg", "Alex Lacamoire at the piano.jpg", "Alex Lacamoire.png"),
}

ACTOR, FILM_ACTOR, TV_ACTOR = "Q33999", "Q10800557", "Q10798782"
SINGER, MUSICIAN, COMPOSER = "Q177220", "Q639669", "Q36834"
POLITICIAN, LAWYER, FOOTBALLER = "Q82955", "Q40348", "Q937857"

ENTITIES: tuple[FakeEntity, ...] = (
    # Order = the search engine's relevance order for a matching query.
    FakeEntity("Q4000001", "Rose Leslie", "rose cultivar", instance_of="Q4886", sitelinks=2),
    FakeEntity("Q76", "Barack Obama", "president of the United States from 2009 to 2017",
               aliases=("Obama", "Barack Hussein Obama II"),
               images=("President_Barack_Obama.jpg",),
               deprecated_images=("Barack Obama low resolution.jpg",),
               category="Barack Obama", occupations=(POLITICIAN, LAWYER), sitelinks=330),
    FakeEntity("Q13133", "Michelle Obama", "first lady of the United States from 2009 to 2017",
               occupations=(LAWYER,), sitelinks=150),
    FakeEntity("Q6279", "Joe Biden", "president of the United States from 2021 to 2025",
               aliases=("Biden", "Joseph Robinette Biden Jr."),
               images=("Obama and Biden 2009.jpg",), preferred_images=("Joe Biden presidential portrait.jpg",),
               category="Joe Biden", occupations=(POLITICIAN, LAWYER), sitelinks=250),
    FakeEntity("Q4000002", "Kit Harington", "English actor", aliases=("Christopher Catesby Harington",),
               images=("Kit Harington 2012.jpg",), category="Kit Harington",
               occupations=(FILM_ACTOR, TV_ACTOR), sitelinks=90),
    FakeEntity("Q4000003", "Rose Leslie", "Scottish actress", images=("Rose Leslie 2014.jpg",),
               category="Rose Leslie", occupations=(TV_ACTOR,), sitelinks=60),
    FakeEntity("Q4000004", "Lin-Manuel Miranda", "American actor, composer and playwright",
               aliases=("Lin Manuel Miranda",), images=("Lin-Manuel Miranda.png",),
               occupations=(ACTOR, COMPOSER, SINGER), sitelinks=80),
    FakeEntity("Q4000005", "Alex Lacamoire", "American music director and orchestrator",
               category="Alex Lacamoire", occupations=(MUSICIAN, COMPOSER), sitelinks=12),
    FakeEntity("Q4000006", "Jane Noimage", "person with no photo on Commons", sitelinks=3),
    # Well-linked people whose files are not on this fake Commons: they fill the
    # SPARQL pages (paging, occupation filters) and look up to no photos.
    *(
        FakeEntity(f"Q{5000000 + i}", f"Extra Person {i}", images=(f"Extra Person {i}.jpg",),
                   occupations=((FILM_ACTOR, SINGER, FOOTBALLER)[i % 3],), sitelinks=200 - i * 5)
        for i in range(1, 31)
    ),
)


@dataclass(frozen=True)
class RecordedRequest:
    service: str  # "wikidata" | "commons" | "sparql" | "search" | "upload"
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


# --- the server ------------------------------------------------------------------------


class WikimediaServer:
    """The fake services; ``settings()`` points a CrawlSettings at them."""

    def __init__(self, faces_dir: Path) -> None:
        self.faces_dir = Path(faces_dir)
        self.entities = {e.qid: e for e in ENTITIES}
        self.files = {f.title: f for f in FILES}
        self.renderer = PhotoRenderer(self.faces_dir)
        self.photos = {p.path: p for p in read_manifest(self.faces_dir)}
        self.photo_sizes = {p.path: (p.width, p.height) for p in self.photos.values()}
        self.requests: list[RecordedRequest] = []
        # Set to (code, info) to make the Wikidata API answer with a MediaWiki error object.
        self.wikidata_error: tuple[str, str] | None = None
        self.robots_txt = "User-agent: *\nAllow: /\n"
        self._server: TestServer | None = None

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
        return self.files[_title(name)]

    def original_url(self, name: str) -> str:
        f = self.file(name)
        h = hashlib.md5(f.key.encode()).hexdigest()
        return f"{self.base_url}{UPLOAD_PREFIX}/{h[0]}/{h[:2]}/{quote(f.key)}"

    def thumb_url(self, name: str, width: int) -> str:
        """The URL imageinfo gives for ``iiurlwidth=width``: the original when it is not wider."""
        f = self.file(name)
        if f.photo is not None and self.photo_sizes[f.photo][0] <= width:
            return self.original_url(name)
        h = hashlib.md5(f.key.encode()).hexdigest()
        thumb_name = f.key + (".png" if f.mime_type == "image/svg+xml" else "")
        return f"{self.base_url}{UPLOAD_PREFIX}/thumb/{h[0]}/{h[:2]}/{quote(f.key)}/{width}px-{quote(thumb_name)}"

    def description_url(self, name: str) -> str:
        return f"{self.base_url}/wiki/{quote(self.file(name).title.replace(' ', '_'), safe=':')}"

    def photo_of(self, url: str) -> Photo | None:
        """The manifest photo behind a thumbnail or original URL this server gave out."""
        path = urlsplit(url).path
        if not path.startswith(UPLOAD_PREFIX + "/"):
            return None
        parts = path[len(UPLOAD_PREFIX) + 1:].split("/")
        key = parts[3] if parts[0] == "thumb" and len(parts) == 5 else parts[-1]
        found = self.files.get(_title(unquote(key)))
        return self.photos.get(found.photo) if found is not None and found.photo else None

    def requests_to(self, service: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.service == service]

    # -- lifecycle --

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", WIKIDATA_PATH, self._wikidata)
        app.router.add_route("*", COMMONS_PATH, self._commons)
        app.router.add_route("*", SPARQL_PATH, self._sparql)
        app.router.add_get(SEARCH_PATH, self._search)
        app.router.add_get(UPLOAD_PREFIX + "/thumb/{a}/{ab}/{name}/{thumb}", self._thumb)
        app.router.add_get(UPLOAD_PREFIX + "/{a}/{ab}/{name}", self._original)
        app.router.add_get("/robots.txt", self._robots)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def _params(self, request: web.Request, service: str) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append(RecordedRequest(service, request.method, request.path, params, dict(request.headers)))
        return params

    async def _robots(self, request: web.Request) -> web.Response:
        return web.Response(text=self.robots_txt)

    # -- Wikidata --

    async def _wikidata(self, request: web.Request) -> web.Response:
        params = await self._params(request, "wikidata")
        if self.wikidata_error is not None:
            code, info = self.wikidata_error
            return _json(_api_error(code, info))
        action = params.get("action")
        if action == "wbsearchentities":
            return _json(self._search_entities(params))
        if action == "wbgetentities":
            return _json(self._get_entities(params))
        return _json(_api_error("badvalue", f'Unrecognized value for parameter "action": {action}.'))

    def _search_entities(self, params: dict[str, str]) -> dict[str, Any]:
        query = params.get("search", "")
        if not query:
            return _api_error("missingparam", 'The "search" parameter must be set.')
        limit = min(50, int(params.get("limit", "7")))
        offset = int(params.get("continue", "0"))
        wanted = query.casefold()
        hits = []
        for entity in self.entities.values():
            for kind, term in [("label", entity.label), *(("alias", a) for a in entity.aliases)]:
                if term.casefold().startswith(wanted):
                    hits.append(_search_hit(entity, kind, term, self.base_url))
                    break
        page = hits[offset:offset + limit]
        answer: dict[str, Any] = {"searchinfo": {"search": query}, "search": page}
        if offset + limit < len(hits):
            answer["search-continue"] = offset + limit
        answer["success"] = 1
        return answer

    def _get_entities(self, params: dict[str, str]) -> dict[str, Any]:
        ids = [i for i in params.get("ids", "").split("|") if i]
        if not ids:
            return _api_error("param-missing", "Either provide the item \"ids\" or pairs of \"sites\" and \"titles\".")
        if len(ids) > 50:
            return _api_error("toomanyvalues", 'Too many values supplied for parameter "ids". The limit is 50.')
        props = set(params.get("props", "info|sitelinks|aliases|labels|descriptions|claims|datatype").split("|"))
        languages = set(params["languages"].split("|")) if params.get("languages") else None
        entities: dict[str, Any] = {}
        for qid in ids:
            if not re.fullmatch(r"Q[1-9]\d*", qid):
                return _api_error("no-such-entity", f'Could not find an entity with the ID "{qid}".')
            entity = self.entities.get(qid)
            entities[qid] = {"id": qid, "missing": ""} if entity is None else _entity_json(entity, props, languages)
        return {"entities": entities, "success": 1}

    # -- Commons --

    async def _commons(self, request: web.Request) -> web.Response:
        params = await self._params(request, "commons")
        if params.get("action") != "query":
            return _json(_api_error("badvalue", f'Unrecognized value for parameter "action": {params.get("action")}.'))
        if params.get("list") == "categorymembers":
            return _json(self._category_members(params))
        if params.get("prop") == "imageinfo" and params.get("titles"):
            return _json(self._imageinfo(params))
        return _json({"batchcomplete": ""})

    def _category_members(self, params: dict[str, str]) -> dict[str, Any]:
        title = params.get("cmtitle", "")
        if not title.startswith("Category:"):
            return _api_error("invalidcategory", "The category name you entered is not valid.")
        limit = min(500, int(params.get("cmlimit", "10")))
        start = int(params.get("cmcontinue", "file|0").split("|")[-1])
        names = CATEGORIES.get(title[len("Category:"):].replace("_", " "), ())
        if params.get("cmtype", "page|subcat|file") not in ("file", "page|subcat|file"):
            names = ()
        members = [
            {"pageid": _page_id(name), "ns": 6, "title": f"File:{name}"} for name in names[start:start + limit]
        ]
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
            return _api_error("toomanyvalues", 'Too many values supplied for parameter "titles". The limit is 50.')
        iiprop = set(params.get("iiprop", "timestamp|user").split("|"))
        width = int(params["iiurlwidth"]) if params.get("iiurlwidth") else None
        meta_filter = set(params["iiextmetadatafilter"].split("|")) if params.get("iiextmetadatafilter") else None
        normalized, pages = [], {}
        missing_id = 0
        for title in titles:
            canonical = _title(title)
            if canonical != title:
                normalized.append({"from": title, "to": canonical})
            found = self.files.get(canonical)
            if found is None:
                missing_id -= 1
                pages[str(missing_id)] = {"ns": 6, "title": canonical, "missing": "", "known": ""}
                continue
            pages[str(_page_id(found.name))] = {
                "pageid": _page_id(found.name), "ns": 6, "title": canonical,
                "imagerepository": "local", "imageinfo": [self._info(found, iiprop, width, meta_filter)],
            }
        query: dict[str, Any] = {}
        if normalized:
            query["normalized"] = normalized
        query["pages"] = pages
        return {"batchcomplete": "", "query": query}

    def _info(self, f: FakeFile, iiprop: set[str], width: int | None, meta_filter: set[str] | None) -> dict[str, Any]:
        w, h = self.photo_sizes[f.photo] if f.photo else (512, 512)
        info: dict[str, Any] = {}
        if "size" in iiprop or "dimensions" in iiprop:
            info.update(size=w * h // 4, width=w, height=h)
        if "url" in iiprop:
            if width is not None:
                info.update(
                    thumburl=self.thumb_url(f.name, width),
                    thumbwidth=min(w, width),
                    thumbheight=round(h * min(w, width) / w),
                )
            info.update(
                url=self.original_url(f.name),
                descriptionurl=self.description_url(f.name),
                descriptionshorturl=f"{self.base_url}/w/index.php?curid={_page_id(f.name)}",
            )
        if "mime" in iiprop:
            info["mime"] = f.mime_type
        if "extmetadata" in iiprop:
            meta = {
                "DateTime": {"value": "2013-01-01 00:00:00", "source": "mediawiki-metadata", "hidden": ""},
                "ObjectName": {"value": f.name.rsplit(".", 1)[0], "source": "mediawiki-metadata", "hidden": ""},
                "Credit": {"value": '<span class="int-own-work" lang="en">Own work</span>', "source": "commons-desc-page", "hidden": ""},
                "Artist": {"value": f.artist_html, "source": "commons-desc-page"},
                "LicenseShortName": {"value": f.license, "source": "commons-desc-page", "hidden": ""},
                "UsageTerms": {"value": f"Creative Commons {f.license}", "source": "commons-desc-page", "hidden": ""},
                "AttributionRequired": {"value": "true", "source": "commons-desc-page", "hidden": ""},
            }
            info["extmetadata"] = {k: v for k, v in meta.items() if meta_filter is None or k in meta_filter}
        return info

    # -- images --

    async def _original(self, request: web.Request) -> web.Response:
        await self._params(request, "upload")
        f = self.files.get(_title(request.match_info["name"]))
        if f is None or f.photo is None:
            raise web.HTTPNotFound()
        body, mime = await self.renderer.render(f.photo, None)
        return web.Response(body=body, content_type=mime)

    async def _thumb(self, request: web.Request) -> web.Response:
        await self._params(request, "upload")
        f = self.files.get(_title(request.match_info["name"]))
        match = re.fullmatch(r"(\d+)px-(.+)", request.match_info["thumb"])
        if f is None or f.photo is None or match is None:
            raise web.HTTPNotFound()
        width = int(match.group(1))
        if width >= self.photo_sizes[f.photo][0]:
            # Commons does not upscale.
            return web.Response(status=400, text="Error generating thumbnail: larger than the original")
        body, mime = await self.renderer.render(f.photo, width)
        return web.Response(body=body, content_type=mime)

    # -- SPARQL --

    async def _sparql(self, request: web.Request) -> web.Response:
        params = await self._params(request, "sparql")
        query = params.get("query", "")
        if not re.search(r"wdt:P31\s+wd:Q5\b", query) or "wdt:P18" not in query:
            # The fake answers only the top-people query; anything else is a client bug here.
            return web.Response(status=400, text="fake SPARQL endpoint: only the top-people query is supported")
        limit_match = re.search(r"\bLIMIT\s+(\d+)", query, re.IGNORECASE)
        offset_match = re.search(r"\bOFFSET\s+(\d+)", query, re.IGNORECASE)
        floor_match = re.search(r"FILTER\s*\(\s*\?sitelinks\s*>=\s*(\d+)\s*\)", query)
        values = re.search(r"VALUES\s+\?occupation\s*\{([^}]*)\}", query)
        occupations = set(re.findall(r"wd:(Q\d+)", values.group(1))) if values else None
        people = [
            e for e in self.entities.values()
            if e.instance_of == "Q5" and (e.images or e.preferred_images)
            and (occupations is None or occupations & set(e.occupations))
            and (floor_match is None or e.sitelinks >= int(floor_match.group(1)))
        ]
        # ORDER BY DESC(?sitelinks) ?item: ties by the item IRI, compared as strings.
        people.sort(key=lambda e: (-e.sitelinks, f"http://www.wikidata.org/entity/{e.qid}"))
        offset = int(offset_match.group(1)) if offset_match else 0
        if limit_match:
            people = people[offset:offset + int(limit_match.group(1))]
        else:
            people = people[offset:]
        answer = {
            "head": {"vars": ["item", "sitelinks"]},
            "results": {"bindings": [
                {
                    "item": {"type": "uri", "value": f"http://www.wikidata.org/entity/{e.qid}"},
                    "sitelinks": {"datatype": "http://www.w3.org/2001/XMLSchema#integer",
                                  "type": "literal", "value": str(e.sitelinks)},
                }
                for e in people
            ]},
        }
        return web.Response(text=json.dumps(answer), content_type="application/sparql-results+json")

    # -- image search --

    async def _search(self, request: web.Request) -> web.Response:
        params = await self._params(request, "search")
        query = params.get("q", "").strip()
        return web.Response(text=self.search_page(query), content_type="text/html", charset="utf-8")

    def search_results(self, query: str) -> list[tuple[str, str]]:
        """(media URL, page URL) of the real results the fake page lists for ``query``."""
        wanted = query.casefold()
        results: list[tuple[str, str]] = []
        for entity in self.entities.values():
            if not wanted or wanted not in {entity.label.casefold(), *(a.casefold() for a in entity.aliases)}:
                continue
            names = [*entity.preferred_images, *entity.images]
            if entity.category:
                names += list(CATEGORIES.get(entity.category, ()))
            for name in dict.fromkeys(_title(n) for n in names):
                f = self.files.get(name)
                if f is not None and f.photo is not None:
                    pair = (self.original_url(f.name), self.description_url(f.name))
                    if pair not in results:
                        results.append(pair)
        return results

    def search_page(self, query: str) -> str:
        """A results page shaped like Bing's: tiles of ``a.iusc`` with ``m`` JSON, plus noise."""
        tiles = []
        for i, (media, page) in enumerate(self.search_results(query)):
            meta = {
                "cid": f"c{i}", "purl": page, "murl": media,
                "turl": f"{self.base_url}/th?id=OIP.{i}", "md5": hashlib.md5(media.encode()).hexdigest(),
                "t": f"{query} photo {i + 1}", "desc": "", "shkey": "",
            }
            tiles.append(
                f'<li><div class="iuscp"><div class="imgpt">'
                f'<a class="iusc" style="height:180px;width:270px" m="{html.escape(json.dumps(meta))}" '
                f'mad="{html.escape(json.dumps({"turl": meta["turl"]}))}" '
                f'href="/images/search?view=detailV2&amp;q={quote(query)}&amp;idx={i}">'
                f'<img class="mimg" src="{meta["turl"]}" alt="{html.escape(meta["t"])}"></a></div></div></li>'
            )
        if tiles:
            # Noise the parser must ignore: a tile whose metadata is not JSON, one
            # with a data: media URL, and an ordinary anchor.
            tiles.insert(1, '<li><a class="iusc" m="{not json">broken</a></li>')
            tiles.append(f'<li><a class="iusc" m="{html.escape(json.dumps({"murl": "data:image/png;base64,AAAA"}))}">x</a></li>')
            tiles.append('<li><a class="other" href="/images/search?q=more">More</a></li>')
        return (
            f"<!DOCTYPE html><html><head><title>{html.escape(query)} - Search Images</title></head>"
            f'<body><div id="b_content"><ul class="dgControl_list">{"".join(tiles)}</ul></div></body></html>'
        )


# --- JSON shapes ---------------------------------------------------------------------


def _json(data: dict[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


def _api_error(code: str, info: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "info": info, "*": "See the API help for usage."},
        "servedby": "mw-api-fake",
    }


def _title(name: str) -> str:
    """MediaWiki title normalisation for files: ``File:``, spaces, first letter upper."""
    for prefix in ("File:", "Image:"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    name = name.replace("_", " ").strip()
    return "File:" + name[:1].upper() + name[1:]


def _page_id(name: str) -> int:
    return int(hashlib.md5(name.encode()).hexdigest()[:7], 16)


def _search_hit(entity: FakeEntity, kind: str, term: str, base_url: str) -> dict[str, Any]:
    return {
        "id": entity.qid,
        "title": entity.qid,
        "pageid": int(entity.qid[1:]) + 100,
        "concepturi": f"http://www.wikidata.org/entity/{entity.qid}",
        "repository": "wikidata",
        "url": f"//www.wikidata.org/wiki/{entity.qid}",
        "display": {
            "label": {"value": entity.label, "language": "en"},
            "description": {"value": entity.description, "language": "en"},
        },
        "label": entity.label,
        "description": entity.description,
        "match": {"type": kind, "language": "en", "text": term},
        **({"aliases": [term]} if kind == "alias" else {}),
    }


def _statement(qid: str, prop: str, datavalue: dict[str, Any], datatype: str, rank: str = "normal") -> dict[str, Any]:
    snak_hash = hashlib.sha1(json.dumps(datavalue, sort_keys=True).encode()).hexdigest()
    return {
        "mainsnak": {"snaktype": "value", "property": prop, "hash": snak_hash,
                     "datavalue": datavalue, "datatype": datatype},
        "type": "statement",
        "id": f"{qid}${snak_hash[:8]}-{snak_hash[8:12]}-{snak_hash[12:16]}-{snak_hash[16:20]}-{snak_hash[20:32]}",
        "rank": rank,
    }


def _item_value(qid: str) -> dict[str, Any]:
    return {"value": {"entity-type": "item", "numeric-id": int(qid[1:]), "id": qid}, "type": "wikibase-entityid"}


def _sitelinks(entity: FakeEntity) -> dict[str, Any]:
    languages = ["en", "de", "fr", "es", "it", "pt", "ru", "ja", "zh", "ar", "nl", "pl", "sv", "uk", "fa"]
    projects = ["wiki", "wikiquote", "wikinews", "wikisource"]
    keys = [f"{lang}{proj}" for proj in projects for lang in languages]
    keys += [f"x{i}wiki" for i in range(max(0, entity.sitelinks - len(keys)))]
    return {
        key: {"site": key, "title": entity.label, "badges": []} for key in keys[: entity.sitelinks]
    }


def _entity_json(entity: FakeEntity, props: set[str], languages: set[str] | None) -> dict[str, Any]:
    qid = entity.qid

    def lang_ok(lang: str) -> bool:
        return languages is None or lang in languages

    data: dict[str, Any] = {"type": "item", "id": qid}
    if "info" in props:
        data.update(pageid=int(qid[1:]) + 100, ns=0, title=qid, lastrevid=2_000_000_000, modified="2025-01-01T00:00:00Z")
    if "labels" in props:
        data["labels"] = {"en": {"language": "en", "value": entity.label}} if lang_ok("en") else {}
    if "descriptions" in props:
        data["descriptions"] = {"en": {"language": "en", "value": entity.description}} if lang_ok("en") else {}
    if "aliases" in props:
        data["aliases"] = {"en": [{"language": "en", "value": a} for a in entity.aliases]} if entity.aliases and lang_ok("en") else {}
    if "claims" in props:
        claims: dict[str, list[dict[str, Any]]] = {"P31": [_statement(qid, "P31", _item_value(entity.instance_of), "wikibase-item")]}
        images = [(n, "deprecated") for n in entity.deprecated_images]
        images += [(n, "normal") for n in entity.images] + [(n, "preferred") for n in entity.preferred_images]
        if images:
            claims["P18"] = [
                _statement(qid, "P18", {"value": n, "type": "string"}, "commonsMedia", rank) for n, rank in images
            ]
        if entity.category:
            claims["P373"] = [_statement(qid, "P373", {"value": entity.category, "type": "string"}, "string")]
        if entity.occupations:
            claims["P106"] = [_statement(qid, "P106", _item_value(q), "wikibase-item") for q in entity.occupations]
        data["claims"] = claims
    if "sitelinks" in props:
        data["sitelinks"] = _sitelinks(entity)
    return data


def people_with_images(occupations: Iterable[str] | None = None) -> list[str]:
    """Q-ids the top-people query should return, in order (most sitelinks first)."""
    wanted = set(occupations) if occupations is not None else None
    people = [
        e for e in ENTITIES
        if e.instance_of == "Q5" and (e.images or e.preferred_images)
        and (wanted is None or wanted & set(e.occupations))
    ]
    people.sort(key=lambda e: (-e.sitelinks, f"http://www.wikidata.org/entity/{e.qid}"))
    return [e.qid for e in people]


@asynccontextmanager
async def wikimedia_server(faces_dir: Path) -> AsyncIterator[WikimediaServer]:
    """Serve the fake Wikimedia services on an ephemeral 127.0.0.1 port for the block."""
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
