"""Wikidata's most-linked people, asked of the query service in sitelinks bands.

Sorting every human by sitelinks and paging with ``OFFSET`` makes the service
gather and sort millions of rows for each page, and times out. Instead each
query asks for one band of sitelinks counts, ``low <= ?sitelinks < high``,
starting from the occupation when one is given (its ``P106`` statements:
the truthy ``wdt:P106`` ones and normal-rank ones beside a preferred one,
through ``p:P106/ps:P106``) and telling the optimiser the sitelinks range is
safe to use as an index range (``hint:Prior hint:rangeSafe true``). Bands
move down from the most-linked: a band whose answer would pass ``page_size``
rows is narrowed and asked again; a thin one makes the next band wider. One
sitelinks value with more people than a page is walked in item order with a
cursor (``STR(?item) > "<last>"``). No query uses ``OFFSET``; none goes
below the floor (``min_sitelinks``).

The service allows each client 60 s of query time a minute and 30 errors a
minute, then answers 429 with Retry-After. Queries go one at a time (the
``wdqs`` fetch policy), each followed by a pause as long as it took, so a
crawl uses at most half of that budget; a query that runs out of time is not
repeated but narrowed (a band halved, a cursor page halved).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sozy.fetch import WDQS, Fetcher, FetchError

from .errors import SourceError

log = logging.getLogger(__name__)

ENTITY = "http://www.wikidata.org/entity/"
# The query service stops queries at 60 s; wait a little longer for its answer.
SPARQL_TIMEOUT_S = 65.0
# The first band: everyone with at least this many sitelinks (a few hundred people in all).
FIRST_LOW = 256
# Queries that ran out of time in a row before the walk gives up (the unit fails, to be retried).
MAX_TIMEOUTS = 4
_PREFIXES = (
    "PREFIX wd: <http://www.wikidata.org/entity/>",
    "PREFIX wdt: <http://www.wikidata.org/prop/direct/>",
    "PREFIX p: <http://www.wikidata.org/prop/>",
    "PREFIX ps: <http://www.wikidata.org/prop/statement/>",
    "PREFIX wikibase: <http://wikiba.se/ontology#>",
    "PREFIX hint: <http://www.bigdata.com/queryHints#>",
)


@dataclass(frozen=True, slots=True)
class Band:
    """People with ``low <= sitelinks < high`` (no upper bound when ``high`` is None).

    With ``after`` set the band is the one value ``low``, walked in item order
    from just after that item IRI ("" = from the start).
    """

    low: int
    high: int | None = None
    after: str | None = None

    def condition(self) -> str:
        if self.after is not None:
            return f'FILTER(?sitelinks = {self.low} && STR(?item) > "{_escape(self.after)}")'
        if self.high is None:
            return f"FILTER(?sitelinks >= {self.low})"
        return f"FILTER(?sitelinks >= {self.low} && ?sitelinks < {self.high})"


@dataclass(frozen=True, slots=True)
class Row:
    qid: str
    sitelinks: int

    @property
    def order(self) -> tuple[int, str]:
        """Most sitelinks first, ties by item IRI (the order pages and cursors agree on)."""
        return (-self.sitelinks, ENTITY + self.qid)


def top_people_query(occupations: Sequence[str], band: Band, limit: int) -> str:
    """SPARQL for the humans with an image in one sitelinks band (see the module docstring)."""
    lines = [*_PREFIXES, "SELECT DISTINCT ?item ?sitelinks WHERE {"]
    if occupations:
        lines += [
            f"  VALUES ?occupation {{ {' '.join(f'wd:{q}' for q in occupations)} }}",
            "  { ?item wdt:P106 ?occupation . }",
            "  UNION",
            "  { ?item p:P106 ?statement . ?statement ps:P106 ?occupation ; wikibase:rank wikibase:NormalRank . }",
        ]
    lines += [
        "  ?item wikibase:sitelinks ?sitelinks . hint:Prior hint:rangeSafe true .",
        f"  {band.condition()}",
        "  ?item wdt:P31 wd:Q5 .",
        "  FILTER EXISTS { ?item wdt:P18 ?image . }",
        "}",
    ]
    if band.after is not None:
        lines.append("ORDER BY ?item")
    lines.append(f"LIMIT {int(limit)}")
    return "\n".join(lines)


def parse_sparql_rows(data: Any) -> list[Row]:
    """(Q-id, sitelinks) of SPARQL JSON results binding ``?item`` and ``?sitelinks``, in answer order."""
    if not isinstance(data, Mapping) or not isinstance(data.get("results"), Mapping):
        raise SourceError("bad_response", "SPARQL: expected {'head': ..., 'results': {'bindings': [...]}}")
    rows: list[Row] = []
    for binding in data["results"].get("bindings") or []:
        if not isinstance(binding, Mapping):
            continue
        item, count = binding.get("item"), binding.get("sitelinks")
        if not isinstance(item, Mapping) or item.get("type") != "uri":
            continue
        value = str(item.get("value", ""))
        if not value.startswith(ENTITY) or not value[len(ENTITY) :].startswith("Q"):
            continue
        try:
            sitelinks = int(str(count.get("value"))) if isinstance(count, Mapping) else 0
        except (TypeError, ValueError):
            sitelinks = 0
        rows.append(Row(value[len(ENTITY) :], sitelinks))
    return rows


class TopPeople:
    """Walks the bands down from the most-linked people (an async iterator of Q-ids)."""

    def __init__(
        self, fetcher: Fetcher, sparql_url: str, occupations: Sequence[str], *, page_size: int, floor: int
    ) -> None:
        self.fetcher = fetcher
        self.sparql_url = sparql_url
        self.occupations = list(occupations)
        self.page_size = max(1, page_size)
        self.floor = max(0, floor)
        self.queries = 0

    async def walk(self, limit: int) -> AsyncIterator[str]:
        wanted = limit
        band = Band(max(self.floor, FIRST_LOW))
        page = self.page_size
        timeouts = 0
        while wanted > 0:
            asked = min(page, wanted) if band.after is not None else self.page_size + 1
            try:
                rows = await self._ask(top_people_query(self.occupations, band, asked))
            except _TimedOut as exc:
                timeouts += 1
                if timeouts > MAX_TIMEOUTS:
                    raise SourceError("sparql_timeout", f"{timeouts} queries in a row ran out of time: {exc}") from None
                band, page = self._narrowed(band, page)
                continue
            timeouts = 0
            if band.after is None and len(rows) > self.page_size:
                band = self._split(band)
                continue
            rows.sort(key=lambda r: r.order)
            for row in rows[:wanted]:
                yield row.qid
            wanted -= min(wanted, len(rows))
            if band.after is not None and len(rows) == asked:
                band = Band(band.low, band.high, ENTITY + rows[-1].qid)
                continue
            if band.low <= self.floor:
                return
            band = Band(self._next_low(band, len(rows)), band.low)
            page = self.page_size

    def _split(self, band: Band) -> Band:
        """The upper part of a band with more people than a page (one value: walked with a cursor)."""
        if band.high is None:
            return Band(band.low * 2)
        if band.high - band.low <= 1:
            return Band(band.low, band.high, "")
        return Band(band.low + (band.high - band.low) // 2, band.high)

    def _narrowed(self, band: Band, page: int) -> tuple[Band, int]:
        if band.after is not None or (band.high is not None and band.high - band.low <= 1):
            return Band(band.low, band.high, band.after or ""), max(1, page // 2)
        return self._split(band), page

    def _next_low(self, band: Band, found: int) -> int:
        """The floor of the next band down: a quarter of a page at the density just seen, and
        never below half the last floor.

        People get much more numerous as sitelinks fall (the counts follow a power
        law), hence the margin; a band that still holds more than a page is split
        when it is asked, at the cost of one query.
        """
        width = band.low // 2
        if band.high is not None and band.after is None:
            per_value = max(found, 1) / (band.high - band.low)
            width = min(width, int(self.page_size / 4 / per_value))
        return max(self.floor, band.low - max(1, width))

    async def _ask(self, query: str) -> list[Row]:
        started = time.monotonic()
        self.queries += 1
        try:
            data = await self.fetcher.api_json(
                self.sparql_url, {"query": query, "format": "json"}, timeout_s=SPARQL_TIMEOUT_S, policy=WDQS
            )
        except FetchError as exc:
            if exc.reason == "timeout" or (exc.status is not None and exc.status in (500, 504)):
                self._rest(time.monotonic() - started)
                raise _TimedOut(str(exc)) from None
            raise
        self._rest(time.monotonic() - started)
        return parse_sparql_rows(data)

    def _rest(self, took: float) -> None:
        # As long a pause as the query took: at most half of the service's 60 s a minute.
        self.fetcher.hold(self.sparql_url, took, WDQS)


class _TimedOut(Exception):
    pass


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
