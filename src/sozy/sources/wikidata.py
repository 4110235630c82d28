"""Names → Commons photos through Wikidata, and Wikidata's most-linked people.

A name is searched on Wikidata (``wbsearchentities``); the best human match
(``P31 = Q5``) gives its image (``P18``) and Commons category (``P373``);
Commons' ``imageinfo`` then gives each file's thumbnail URL, description page,
licence and author. ``top_people`` asks the SPARQL endpoint for the humans
with an image that most Wikipedias link to.

Parsing is done by pure functions on the API's JSON, separate from fetching.
All API calls go through ``Fetcher.api_json``, which sends the identifying
User-Agent Wikimedia's policy asks for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher
from sozy.records import Candidate

from .errors import SourceError
from .htmltext import strip_html

log = logging.getLogger(__name__)

SOURCE = "wikidata"
HUMAN = "Q5"
QID = re.compile(r"^[Qq][1-9]\d*$")
ENTITY_URI = re.compile(r"/entity/(Q[1-9]\d*)$")
# Search hits checked for a human; more costs a heavier wbgetentities answer.
SEARCH_LIMIT = 7
# The query service stops queries at 60 s; wait a little longer for its answer.
SPARQL_TIMEOUT_S = 65.0
# MediaWiki accepts at most 50 titles per query for ordinary clients.
TITLES_PER_QUERY = 50
# Originals Commons can thumbnail to a photo we can decode (SVG/PDF/video are not photos).
PHOTO_MIMES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff"})

# Friendly occupation names → Wikidata items (P106 values). Several items per
# name because Wikidata records the specific occupation ("film actor",
# "association football player") more often than the general one.
OCCUPATIONS: Mapping[str, tuple[str, ...]] = {
    "actor": ("Q33999", "Q10800557", "Q10798782"),
    "singer": ("Q177220",),
    "musician": ("Q639669", "Q855091", "Q486748", "Q753110"),
    "rapper": ("Q2252262",),
    "composer": ("Q36834",),
    "athlete": (
        "Q2066131", "Q937857", "Q3665646", "Q10833314", "Q10871364", "Q19204627",
        "Q12299841", "Q11338576", "Q11303721", "Q10843402", "Q378622", "Q11513337",
    ),
    "footballer": ("Q937857",),
    "basketball player": ("Q3665646",),
    "tennis player": ("Q10833314",),
    "politician": ("Q82955",),
    "writer": ("Q36180",),
    "journalist": ("Q1930187",),
    "model": ("Q4610556",),
    "comedian": ("Q245068",),
    "director": ("Q2526255",),
    "television presenter": ("Q947873",),
    "businessperson": ("Q43845",),
    "scientist": ("Q901",),
    "painter": ("Q1028181",),
    "youtuber": ("Q17125263",),
}


# --- records parsed from the APIs -------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ``wbsearchentities`` result."""

    id: str
    label: str | None
    match_text: str | None


@dataclass(frozen=True, slots=True)
class Entity:
    """What Sozy needs of a Wikidata item."""

    id: str
    label: str | None
    is_human: bool
    images: tuple[str, ...] = ()  # P18 file names, preferred rank first
    category: str | None = None  # P373, without the "Category:" prefix
    sitelinks: int = 0


@dataclass(frozen=True, slots=True)
class CommonsFile:
    """A Commons file as ``imageinfo`` describes it."""

    title: str
    thumb_url: str
    page_url: str | None
    mime: str | None
    license: str | None
    attribution: str | None


@dataclass(slots=True)
class CategoryPage:
    titles: list[str] = field(default_factory=list)
    # Parameters for the next request, or None at the end.
    next_params: dict[str, str] | None = None


# --- pure parsing -------------------------------------------------------------


def check_api(data: Any, what: str) -> Mapping[str, Any]:
    """The answer as a mapping; a MediaWiki ``error`` object raises SourceError."""
    if not isinstance(data, Mapping):
        raise SourceError("bad_response", f"{what}: expected a JSON object, got {type(data).__name__}")
    error = data.get("error")
    if isinstance(error, Mapping):
        raise SourceError("api_error", f"{what}: {error.get('code', '?')}: {error.get('info', '')}")
    return data


def parse_search(data: Any) -> list[SearchHit]:
    """Hits of a ``wbsearchentities`` answer, in the API's ranking order."""
    hits: list[SearchHit] = []
    for item in check_api(data, "wbsearchentities").get("search") or []:
        if not isinstance(item, Mapping) or not QID.match(str(item.get("id", ""))):
            continue
        match = item.get("match") if isinstance(item.get("match"), Mapping) else {}
        hits.append(SearchHit(str(item["id"]), _str(item.get("label")), _str(match.get("text"))))
    return hits


def parse_entities(data: Any, language: str = "en") -> dict[str, Entity]:
    """Entities of a ``wbgetentities`` answer (missing ones left out), by id."""
    entities: dict[str, Entity] = {}
    raw_entities = check_api(data, "wbgetentities").get("entities") or {}
    for key, raw in raw_entities.items():
        if not isinstance(raw, Mapping) or "missing" in raw:
            continue
        qid = str(raw.get("id", key))
        claims = raw.get("claims") if isinstance(raw.get("claims"), Mapping) else {}
        categories = _claim_values(claims, "P373")
        entities[qid] = Entity(
            id=qid,
            label=_label(raw.get("labels"), language),
            is_human=HUMAN in (_entity_id(v) for v in _claim_values(claims, "P31")),
            images=tuple(dict.fromkeys(v for v in _claim_values(claims, "P18") if isinstance(v, str))),
            category=categories[0] if categories and isinstance(categories[0], str) else None,
            sitelinks=len(raw.get("sitelinks") or {}),
        )
    return entities


def choose_person(query: str, hits: Sequence[SearchHit], entities: Mapping[str, Entity]) -> Entity | None:
    """The best human for a searched name.

    Humans only; an exact (case-insensitive) label or alias match beats a
    partial one; then the most sitelinks (the better-known person); then the
    search engine's own order.
    """
    wanted = query.casefold()
    best: tuple[tuple[bool, int, int], Entity] | None = None
    for rank, hit in enumerate(hits):
        entity = entities.get(hit.id)
        if entity is None or not entity.is_human:
            continue
        exact = wanted in {(hit.label or "").casefold(), (hit.match_text or "").casefold()}
        key = (exact, entity.sitelinks, -rank)
        if best is None or key > best[0]:
            best = (key, entity)
    return best[1] if best else None


def file_title(name: str) -> str:
    """A Commons file page title from a P18 value or a title: ``a_b.jpg`` → ``File:A b.jpg``."""
    name = name.strip()
    for prefix in ("File:", "Image:"):
        if name[: len(prefix)].lower() == prefix.lower():
            name = name[len(prefix):]
    name = " ".join(name.replace("_", " ").split())
    return "File:" + name[:1].upper() + name[1:]


def parse_category_members(data: Any, params: Mapping[str, str]) -> CategoryPage:
    """File titles of a ``list=categorymembers`` answer, and how to continue it."""
    data = check_api(data, "categorymembers")
    page = CategoryPage()
    for member in (data.get("query") or {}).get("categorymembers") or []:
        if isinstance(member, Mapping) and isinstance(member.get("title"), str):
            page.titles.append(member["title"])
    continuation = data.get("continue")
    if isinstance(continuation, Mapping) and continuation:
        page.next_params = {**params, **{str(k): str(v) for k, v in continuation.items()}}
    return page


def parse_imageinfo(data: Any, thumb_width: int, base_url: str) -> dict[str, CommonsFile]:
    """Files of a ``prop=imageinfo`` answer by title (as requested, before normalisation).

    Missing files and files without a usable URL are left out. The image URL
    is ``thumburl`` (at most ``thumb_width`` px wide), or the original when
    the API gave no thumbnail and the original is small enough.
    """
    data = check_api(data, "imageinfo")
    query = data.get("query") or {}
    renamed = {
        str(n.get("to")): str(n.get("from"))
        for n in query.get("normalized") or []
        if isinstance(n, Mapping)
    }
    pages = query.get("pages") or {}
    files: dict[str, CommonsFile] = {}
    for page in pages.values() if isinstance(pages, Mapping) else pages:
        if not isinstance(page, Mapping) or "missing" in page or "invalid" in page:
            continue
        infos = page.get("imageinfo")
        if not infos or not isinstance(infos[0], Mapping):
            continue
        info = infos[0]
        url = _str(info.get("thumburl"))
        if url is None and _int(info.get("width")) <= thumb_width:
            url = _str(info.get("url"))
        if url is None:
            continue
        meta = info.get("extmetadata") if isinstance(info.get("extmetadata"), Mapping) else {}
        title = str(page.get("title", ""))
        page_url = _str(info.get("descriptionurl"))
        record = CommonsFile(
            title=title,
            thumb_url=urljoin(base_url, url),
            page_url=urljoin(base_url, page_url) if page_url else None,
            mime=_str(info.get("mime")),
            license=strip_html(_meta_value(meta, "LicenseShortName")),
            attribution=strip_html(_meta_value(meta, "Artist")),
        )
        files[title] = record
        if title in renamed:
            files[renamed[title]] = record
    return files


def occupation_ids(occupations: Iterable[str]) -> list[str]:
    """Wikidata items for friendly occupation names (or Q-ids given as they are).

    Raises ValueError naming the known occupations for an unknown one.
    """
    ids: list[str] = []
    for occupation in occupations:
        key = " ".join(occupation.strip().lower().replace("_", " ").split())
        if QID.match(key):
            found: tuple[str, ...] = (key.upper(),)
        elif key in OCCUPATIONS:
            found = OCCUPATIONS[key]
        elif key.endswith("s") and key[:-1] in OCCUPATIONS:
            found = OCCUPATIONS[key[:-1]]
        else:
            known = ", ".join(sorted(OCCUPATIONS))
            raise ValueError(f"unknown occupation {occupation!r}: use a Q-id or one of: {known}")
        ids.extend(q for q in found if q not in ids)
    return ids


def top_people_query(limit: int, offset: int, occupations: Sequence[str] = (), min_sitelinks: int = 0) -> str:
    """SPARQL for humans with an image, most sitelinks first (ties by item, for stable pages)."""
    lines = [
        "PREFIX wd: <http://www.wikidata.org/entity/>",
        "PREFIX wdt: <http://www.wikidata.org/prop/direct/>",
        "PREFIX wikibase: <http://wikiba.se/ontology#>",
        "SELECT ?item ?sitelinks WHERE {",
        "  ?item wdt:P31 wd:Q5 ;",
        "        wikibase:sitelinks ?sitelinks .",
    ]
    if min_sitelinks > 0:
        lines.append(f"  FILTER(?sitelinks >= {int(min_sitelinks)})")
    lines.append("  FILTER EXISTS { ?item wdt:P18 ?image . }")
    if occupations:
        values = " ".join(f"wd:{q}" for q in occupations)
        lines.append(f"  FILTER EXISTS {{ VALUES ?occupation {{ {values} }} ?item wdt:P106 ?occupation . }}")
    lines += [
        "}",
        "ORDER BY DESC(?sitelinks) ?item",
        f"LIMIT {int(limit)}",
        f"OFFSET {int(offset)}",
    ]
    return "\n".join(lines)


def parse_sparql_ids(data: Any, var: str = "item") -> list[str]:
    """Q-ids bound to ``var`` in SPARQL JSON results, in order."""
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
        raise SourceError("bad_response", "SPARQL: expected {'head': ..., 'results': {'bindings': [...]}}")
    ids: list[str] = []
    for binding in data["results"].get("bindings") or []:
        value = binding.get(var) if isinstance(binding, Mapping) else None
        if isinstance(value, Mapping) and value.get("type") == "uri":
            match = ENTITY_URI.search(str(value.get("value", "")))
            if match:
                ids.append(match.group(1))
    return ids


def _claim_values(claims: Mapping[str, Any], prop: str) -> list[Any]:
    """Values of a property's statements: preferred rank first, deprecated ones dropped."""
    statements = [s for s in claims.get(prop) or [] if isinstance(s, Mapping)]
    order = {"preferred": 0, "normal": 1}
    values: list[Any] = []
    for statement in sorted(statements, key=lambda s: order.get(str(s.get("rank", "normal")), 2)):
        if statement.get("rank") == "deprecated":
            continue
        snak = statement.get("mainsnak") or {}
        if snak.get("snaktype", "value") != "value":
            continue
        datavalue = snak.get("datavalue") or {}
        if "value" in datavalue:
            values.append(datavalue["value"])
    return values


def _entity_id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if isinstance(value.get("id"), str):
            return value["id"]
        if value.get("numeric-id") is not None:
            return f"Q{value['numeric-id']}"
    return None


def _label(labels: Any, language: str) -> str | None:
    if not isinstance(labels, Mapping) or not labels:
        return None
    chosen = labels.get(language) or next(iter(labels.values()))
    return _str(chosen.get("value")) if isinstance(chosen, Mapping) else None


def _meta_value(meta: Mapping[str, Any], key: str) -> str | None:
    entry = meta.get(key)
    if isinstance(entry, Mapping):
        return _str(entry.get("value"))
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1 << 62


# --- the source -----------------------------------------------------------------


class WikidataNames:
    """Resolve names (or Q-ids) to Commons photos; list the most-linked people."""

    def __init__(self, fetcher: Fetcher, settings: CrawlSettings) -> None:
        self.fetcher = fetcher
        self.settings = settings

    async def lookup(self, name: str) -> list[Candidate]:
        """Up to ``images_per_person`` Commons photos of the person ``name`` denotes.

        ``name`` is searched in English; a Q-id (``Q76``) is used as it is.
        No human found, or a human without photos, gives ``[]``. API failures
        raise (the fetcher's ``FetchError`` or ``SourceError``) so the caller
        can retry the name later instead of recording it as done.
        """
        query = " ".join(name.split())
        if not query:
            return []
        if QID.match(query):
            hits = [SearchHit(query.upper(), None, None)]
        else:
            hits = parse_search(await self._wikidata({
                "action": "wbsearchentities", "search": query, "language": "en", "uselang": "en",
                "type": "item", "limit": str(SEARCH_LIMIT),
            }))
        if not hits:
            log.info("wikidata: nothing found for %r", query)
            return []
        entities = parse_entities(await self._wikidata({
            "action": "wbgetentities", "ids": "|".join(h.id for h in hits),
            "props": "claims|labels|sitelinks", "languages": "en",
        }))
        person = choose_person(query, hits, entities)
        if person is None:
            log.info("wikidata: no human among the matches for %r", query)
            return []
        files = await self._files_of(person)
        label = person.label or (None if QID.match(query) else query)
        candidates = [
            Candidate(
                image_url=f.thumb_url, source=SOURCE, page_url=f.page_url, name=label,
                license=f.license, attribution=f.attribution,
            )
            for f in files
        ]
        if not candidates:
            log.info("wikidata: %s (%s) has no photos on Commons", label, person.id)
        return candidates

    async def top_people(
        self, limit: int, occupations: Sequence[str] = (), *, page_size: int = 1000, min_sitelinks: int = 0
    ) -> AsyncIterator[str]:
        """Q-ids of up to ``limit`` humans with an image, most sitelinks first.

        ``occupations`` are friendly names (``actor``, ``singer``, ``athlete``,
        ``footballer``, ``politician``, ``musician`` …, see ``OCCUPATIONS``)
        or Q-ids; a person matching any of them counts. Pages of
        ``page_size`` rows are asked with LIMIT/OFFSET. Raises ValueError for
        an unknown occupation before any request.
        """
        occupation_qids = occupation_ids(occupations)
        seen: set[str] = set()
        offset = 0
        while len(seen) < limit:
            size = max(1, min(page_size, limit - len(seen)))
            query = top_people_query(size, offset, occupation_qids, min_sitelinks)
            data = await self.fetcher.api_json(
                self.settings.sparql_url, {"query": query, "format": "json"}, timeout_s=SPARQL_TIMEOUT_S
            )
            ids = parse_sparql_ids(data)
            offset += size
            for qid in ids:
                if qid in seen:
                    continue
                seen.add(qid)
                yield qid
                if len(seen) >= limit:
                    return
            if len(ids) < size:
                return

    async def _files_of(self, person: Entity) -> list[CommonsFile]:
        wanted = max(0, self.settings.images_per_person)
        titles = list(dict.fromkeys(file_title(f) for f in person.images))
        if person.category and len(titles) < wanted:
            # Ask for a few more than needed: some members are not photos (SVG, PDF).
            extra = await self._category_files(person.category, wanted + len(titles))
            titles.extend(t for t in extra if t not in titles)
        files: list[CommonsFile] = []
        for start in range(0, len(titles), TITLES_PER_QUERY):
            if len(files) >= wanted:
                break
            batch = titles[start:start + TITLES_PER_QUERY]
            info = parse_imageinfo(await self._commons({
                "action": "query", "prop": "imageinfo", "titles": "|".join(batch),
                "iiprop": "url|extmetadata|size|mime", "iiurlwidth": str(self.settings.thumb_width),
                "iiextmetadatafilter": "LicenseShortName|Artist", "iiextmetadatalanguage": "en",
            }), self.settings.thumb_width, self.settings.commons_api)
            for title in batch:
                found = info.get(title)
                if found is None:
                    log.debug("commons: %s is missing", title)
                elif found.mime is not None and found.mime not in PHOTO_MIMES:
                    log.debug("commons: %s is %s, not a photo", title, found.mime)
                elif found.thumb_url not in {f.thumb_url for f in files}:
                    files.append(found)
        return files[:wanted]

    async def _category_files(self, category: str, limit: int) -> list[str]:
        params = {
            "action": "query", "list": "categorymembers", "cmtitle": f"Category:{category}",
            "cmtype": "file", "cmlimit": str(min(500, max(1, limit))),
        }
        titles: list[str] = []
        # Bounded: a category bigger than `limit` is cut, never walked to its end.
        for _ in range(10):
            page = parse_category_members(await self._commons(params), params)
            titles.extend(page.titles)
            if len(titles) >= limit or page.next_params is None:
                break
            params = page.next_params
        return titles[:limit]

    async def _wikidata(self, params: dict[str, str]) -> Any:
        return await self.fetcher.api_json(self.settings.wikidata_api, {**params, "format": "json"})

    async def _commons(self, params: dict[str, str]) -> Any:
        return await self.fetcher.api_json(self.settings.commons_api, {**params, "format": "json"})
