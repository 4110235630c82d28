"""Names → Commons photos through Wikidata, and Wikidata's most-linked people.

A name is searched on Wikidata (``wbsearchentities``); the best human match
(``P31 = Q5``) gives its image (``P18``) and Commons category (``P373``);
Commons' ``imageinfo`` then gives each file's thumbnail URL, description page,
licence and author. ``top_people`` asks the SPARQL endpoint for the humans
with an image that most Wikipedias link to.

Parsing is done by pure functions on the API's JSON, separate from fetching.
Wikimedia's etiquette is kept here and in the fetch policies this source
names: every API call and every photo goes out with the identifying
User-Agent, API calls one at a time per API with ``maxlag=5`` (a ``maxlag``
answer pauses that API for its Retry-After and is asked again), photos as
``wikimedia_media`` (at most 2 downloads at once), query-service queries one
at a time, spaced so they use at most half of the service's 60 s per minute,
and narrowed rather than repeated when one runs out of time.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from sozy.config import CrawlSettings
from sozy.fetch import WIKIMEDIA_MEDIA, Fetcher, FetchError
from sozy.fetch.errors import BAD_JSON
from sozy.fetch.retry import retry_after_seconds
from sozy.records import Candidate

from .errors import SourceError
from .htmltext import strip_html
from .toppeople import TopPeople

log = logging.getLogger(__name__)

SOURCE = "wikidata"
HUMAN = "Q5"
QID = re.compile(r"^[Qq][1-9]\d*$")
# Search hits checked for a human; more costs a heavier wbgetentities answer.
SEARCH_LIMIT = 7
# MediaWiki accepts at most 50 titles per query for ordinary clients.
TITLES_PER_QUERY = 50
# Originals Commons can thumbnail to a photo we can decode (SVG/PDF/video are not photos).
PHOTO_MIMES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff"})
# The thumbnail widths Wikimedia serves ($wgThumbnailSteps); a width between two is rounded up.
THUMB_STEPS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)
# Seconds of replication lag past which MediaWiki answers "maxlag" (what its docs advise for bots).
MAXLAG = "5"
# maxlag answers waited out per API call before the name fails (to be retried later).
MAXLAG_ATTEMPTS = 6
MAXLAG_DEFAULT_WAIT_S = 5.0
# Continuations followed for one imageinfo batch (an answer is cut when its metadata is large).
IMAGEINFO_CONTINUES = 20
# What Commons' extmetadata says about reuse.
EXTMETADATA = "LicenseShortName|LicenseUrl|Artist|Credit|AttributionRequired|Restrictions"

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
        "Q2066131",
        "Q937857",
        "Q3665646",
        "Q10833314",
        "Q10871364",
        "Q19204627",
        "Q12299841",
        "Q11338576",
        "Q11303721",
        "Q10843402",
        "Q378622",
        "Q11513337",
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
    """A Commons file as ``imageinfo`` describes it (its reuse terms from ``extmetadata``)."""

    title: str
    thumb_url: str
    page_url: str | None
    mime: str | None
    license: str | None
    attribution: str | None  # Artist, HTML stripped
    license_url: str | None = None
    credit: str | None = None  # Credit, HTML stripped ("Own work", a source)
    attribution_required: bool | None = None
    # Restrictions templates on the file page: "personality" (personality rights), "trademarked", ...
    restrictions: tuple[str, ...] = ()

    @property
    def credit_line(self) -> str | None:
        """Who to credit: the author, else the credit line."""
        return self.attribution or self.credit


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
        match = item.get("match")
        if not isinstance(match, Mapping):
            match = {}
        hits.append(SearchHit(str(item["id"]), _str(item.get("label")), _str(match.get("text"))))
    return hits


def parse_entities(data: Any, language: str = "en") -> dict[str, Entity]:
    """Entities of a ``wbgetentities`` answer (missing ones left out), by id.

    A merged item is answered under the id asked for, with ``id`` naming the
    item it was merged into and ``redirects: {from, to}``: it is filed under
    both ids, so a lookup of the old id finds the person (whose ``id`` is the
    target's).
    """
    entities: dict[str, Entity] = {}
    raw_entities = check_api(data, "wbgetentities").get("entities") or {}
    for key, raw in raw_entities.items():
        if not isinstance(raw, Mapping) or "missing" in raw:
            continue
        qid = str(raw.get("id", key))
        claims: Mapping[str, Any] = raw["claims"] if isinstance(raw.get("claims"), Mapping) else {}
        categories = _claim_values(claims, "P373")
        entities[str(key)] = entities[qid] = Entity(
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
            name = name[len(prefix) :]
    name = " ".join(name.replace("_", " ").split())
    return "File:" + _upper_first(name[:1]) + name[1:]


def _upper_first(char: str) -> str:
    """MediaWiki's first-letter capital: one character stays one (``ß`` stays ``ß``, never ``SS``)."""
    upper = char.upper()
    return upper if len(upper) == 1 else char


def standard_thumb_width(width: int) -> int:
    """The widest standard thumbnail width not above ``width`` (at least the smallest step).

    Wikimedia renders only ``THUMB_STEPS`` and rounds other widths up, so
    asking for a step is the only way to get a photo no wider than asked.
    """
    fitting = [step for step in THUMB_STEPS if step <= width]
    return fitting[-1] if fitting else THUMB_STEPS[0]


def continuation(data: Mapping[str, Any]) -> dict[str, str] | None:
    """The parameters a MediaWiki answer's ``continue`` asks the next request to add, or None."""
    cont = data.get("continue")
    if isinstance(cont, Mapping) and cont:
        return {str(k): str(v) for k, v in cont.items()}
    return None


def maxlag_error(data: Any) -> Mapping[str, Any] | None:
    """The ``error`` object of a MediaWiki ``maxlag`` answer (HTTP 200), or None."""
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and error.get("code") == "maxlag":
            return error
    return None


def parse_category_members(data: Any, params: Mapping[str, str]) -> CategoryPage:
    """File titles of a ``list=categorymembers`` answer, and how to continue it."""
    data = check_api(data, "categorymembers")
    page = CategoryPage()
    for member in (data.get("query") or {}).get("categorymembers") or []:
        if isinstance(member, Mapping) and isinstance(member.get("title"), str):
            page.titles.append(member["title"])
    more = continuation(data)
    if more:
        page.next_params = {**params, **more}
    return page


def parse_imageinfo(data: Any, thumb_width: int, base_url: str) -> dict[str, CommonsFile]:
    """Files of a ``prop=imageinfo`` answer by title (as requested, before normalisation).

    Missing files and files without a usable URL are left out. The image URL
    is ``thumburl`` (at most ``thumb_width`` px wide), or the original when
    the API gave no thumbnail and the original is small enough.
    """
    data = check_api(data, "imageinfo")
    query = data.get("query") or {}
    renamed = {str(n.get("to")): str(n.get("from")) for n in query.get("normalized") or [] if isinstance(n, Mapping)}
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
        meta: Mapping[str, Any] = info["extmetadata"] if isinstance(info.get("extmetadata"), Mapping) else {}
        title = str(page.get("title", ""))
        page_url = _str(info.get("descriptionurl"))
        license_url = _meta_value(meta, "LicenseUrl")
        required = _meta_value(meta, "AttributionRequired")
        record = CommonsFile(
            title=title,
            thumb_url=urljoin(base_url, url),
            page_url=urljoin(base_url, page_url) if page_url else None,
            mime=_str(info.get("mime")),
            license=strip_html(_meta_value(meta, "LicenseShortName")),
            attribution=strip_html(_meta_value(meta, "Artist")),
            license_url=urljoin("https:", license_url) if license_url else None,
            credit=strip_html(_meta_value(meta, "Credit")),
            attribution_required=None if required is None else required.strip().lower() == "true",
            restrictions=tuple(r for r in (_meta_value(meta, "Restrictions") or "").split("|") if r),
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
        given = value.get("id")
        if isinstance(given, str):
            return given
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

        ``name`` is searched in English; a Q-id (``Q76``) is used as it is (a
        merged one is followed to the item it was merged into). Every photo
        carries the person's Q-id (``person_id``), its licence and author, and
        the ``wikimedia_media`` fetch policy; the item's own images (P18) are
        marked ``reference``: consensus checks the person's other photos
        against their portrait. No human found, or a human
        without photos, gives ``[]``. API failures raise (the fetcher's
        ``FetchError`` or ``SourceError``) so the caller can retry the name
        later instead of recording it as done.
        """
        query = " ".join(name.split())
        person = await self.person(query)
        if person is None:
            return []
        files = await self._files_of(person)
        label = person.label or (None if QID.match(query) else query)
        candidates = [
            Candidate(
                image_url=f.thumb_url,
                source=SOURCE,
                page_url=f.page_url,
                name=label,
                person_id=person.id,
                license=f.license,
                license_url=f.license_url,
                attribution=f.credit_line,
                attribution_required=f.attribution_required,
                restrictions="|".join(f.restrictions) or None,
                fetch_policy=WIKIMEDIA_MEDIA.name,
                reference=portrait,
            )
            for f, portrait in files
        ]
        if not candidates:
            log.info("wikidata: %s (%s) has no photos on Commons", label, person.id)
        return candidates

    async def person(self, name: str) -> Entity | None:
        """The human ``name`` (a name or a Q-id) denotes, redirects followed; None if none."""
        query = " ".join(name.split())
        if not query:
            return None
        if QID.match(query):
            hits = [SearchHit(query.upper(), None, None)]
        else:
            hits = parse_search(
                await self._wikidata(
                    {
                        "action": "wbsearchentities",
                        "search": query,
                        "language": "en",
                        "uselang": "en",
                        "type": "item",
                        "limit": str(SEARCH_LIMIT),
                    }
                )
            )
        if not hits:
            log.info("wikidata: nothing found for %r", query)
            return None
        entities = parse_entities(
            await self._wikidata(
                {
                    "action": "wbgetentities",
                    "ids": "|".join(h.id for h in hits),
                    "props": "claims|labels|sitelinks",
                    "languages": "en",
                }
            )
        )
        person = choose_person(query, hits, entities)
        if person is None:
            log.info("wikidata: no human among the matches for %r", query)
        return person

    async def top_people(
        self, limit: int, occupations: Sequence[str] = (), *, page_size: int = 1000, min_sitelinks: int = 0
    ) -> AsyncIterator[str]:
        """Q-ids of up to ``limit`` humans with an image, most sitelinks first (ties by item).

        ``occupations`` are friendly names (``actor``, ``singer``, ``athlete``,
        ``footballer``, ``politician``, ``musician`` …, see ``OCCUPATIONS``)
        or Q-ids; a person with any of them counts. Nobody with fewer than
        ``min_sitelinks`` sitelinks is asked for. The query service is asked
        band by band (``sozy.sources.toppeople``), never with OFFSET. Raises
        ValueError for an unknown occupation before any request.
        """
        walk = TopPeople(
            self.fetcher,
            self.settings.sparql_url,
            occupation_ids(occupations),
            page_size=page_size,
            floor=min_sitelinks,
        )
        seen: set[str] = set()
        async for qid in walk.walk(limit):
            if qid not in seen:
                seen.add(qid)
                yield qid

    async def _files_of(self, person: Entity) -> list[tuple[CommonsFile, bool]]:
        """The person's photos, and whether each is one of the item's own images (P18)."""
        wanted = self.settings.images_per_person
        titles = list(dict.fromkeys(file_title(f) for f in person.images))
        portraits = set(titles)
        if person.category and len(titles) < wanted:
            # Ask for a few more than needed: some members are not photos (SVG, PDF).
            extra = await self._category_files(person.category, wanted + len(titles))
            titles.extend(t for t in extra if t not in titles)
        files: list[tuple[CommonsFile, bool]] = []
        for start in range(0, len(titles), TITLES_PER_QUERY):
            if len(files) >= wanted:
                break
            batch = titles[start : start + TITLES_PER_QUERY]
            info = await self._imageinfo(batch)
            for title in batch:
                found = info.get(title)
                if found is None:
                    log.debug("commons: %s is missing", title)
                elif found.mime is not None and found.mime not in PHOTO_MIMES:
                    log.debug("commons: %s is %s, not a photo", title, found.mime)
                elif found.thumb_url not in {f.thumb_url for f, _ in files}:
                    files.append((found, title in portraits))
        return files[:wanted]

    async def _imageinfo(self, titles: Sequence[str]) -> dict[str, CommonsFile]:
        """imageinfo of ``titles``, following ``continue`` (Commons cuts answers with much metadata)."""
        width = standard_thumb_width(self.settings.thumb_width)
        params = {
            "action": "query",
            "prop": "imageinfo",
            "titles": "|".join(titles),
            "iiprop": "url|extmetadata|size|mime",
            "iiurlwidth": str(width),
            "iiextmetadatafilter": EXTMETADATA,
            "iiextmetadatalanguage": "en",
        }
        files: dict[str, CommonsFile] = {}
        ask = params
        for _ in range(IMAGEINFO_CONTINUES):
            data = await self._commons(ask)
            files.update(parse_imageinfo(data, width, self.settings.commons_api))
            more = continuation(check_api(data, "imageinfo"))
            if more is None:
                break
            ask = {**params, **more}
        return files

    async def _category_files(self, category: str, limit: int) -> list[str]:
        params = {
            "action": "query",
            "list": "categorymembers",
            "cmtitle": f"Category:{category}",
            "cmtype": "file",
            "cmlimit": str(min(500, max(1, limit))),
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
        return await self._mediawiki(self.settings.wikidata_api, params)

    async def _commons(self, params: dict[str, str]) -> Any:
        return await self._mediawiki(self.settings.commons_api, params)

    async def _mediawiki(self, url: str, params: Mapping[str, str]) -> Any:
        """A MediaWiki API answer, asked with ``maxlag``; a maxlag answer pauses the API and is asked again.

        The pause (its Retry-After, else 5 s) holds every call to that API, not
        just this one: the servers are lagging for everyone.
        """
        query = {**params, "format": "json", "maxlag": MAXLAG}
        info = ""
        for _ in range(MAXLAG_ATTEMPTS):
            fetched = await self.fetcher.api(url, query)
            try:
                data = json.loads(fetched.body)
            except ValueError as exc:
                raise FetchError(BAD_JSON, url, str(exc)) from None
            lag = maxlag_error(data)
            if lag is None:
                return data
            asked = retry_after_seconds(fetched.headers.get("Retry-After"))
            wait = min(MAXLAG_DEFAULT_WAIT_S if asked is None else asked, self.settings.backoff_max_s)
            info = str(lag.get("info", "maxlag"))
            self.fetcher.counters["maxlag"] += 1
            log.info("%s: %s, waiting %.0f s", url, info, wait)
            self.fetcher.hold(url, wait)
        raise SourceError("maxlag", f"{url}: still lagged after {MAXLAG_ATTEMPTS} tries: {info}")
