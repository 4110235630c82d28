"""The fake query service's answers: the top-people queries Sozy sends, evaluated on the fake world.

It reads what the real service would act on — the occupations (``VALUES
?occupation``), whether normal-rank statements count (``p:P106`` with
``wikibase:NormalRank``) or only the truthy ones (``wdt:P106``), the
sitelinks range or the one sitelinks value with an item cursor, ``ORDER BY``,
``LIMIT`` and ``OFFSET`` — and answers SPARQL 1.1 JSON results. Without an
``ORDER BY`` rows come in no useful order, as from the real service.

Cost is the rows the query must gather before ``LIMIT`` applies; past
``max_rows`` the query runs out of time the way Blazegraph does (HTTP 500
whose body names ``java.util.concurrent.TimeoutException``). A query without
a sitelinks floor starts from every human and always times out.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .wikimedia_world import FakeEntity

ENTITY = "http://www.wikidata.org/entity/"
TIMEOUT_BODY = (
    "SPARQL-QUERY: queryStr=...\njava.util.concurrent.ExecutionException: "
    "java.util.concurrent.TimeoutException\n\tat java.util.concurrent.FutureTask.report(FutureTask.java:122)\n"
)

_RANGE = re.compile(r"FILTER\s*\(\s*\?sitelinks\s*>=\s*(\d+)(?:\s*&&\s*\?sitelinks\s*<\s*(\d+))?\s*\)")
_AT = re.compile(r'FILTER\s*\(\s*\?sitelinks\s*=\s*(\d+)\s*&&\s*STR\(\?item\)\s*>\s*"([^"]*)"\s*\)')
_VALUES = re.compile(r"VALUES\s+\?occupation\s*\{([^}]*)\}")
_LIMIT = re.compile(r"\bLIMIT\s+(\d+)", re.IGNORECASE)
_OFFSET = re.compile(r"\bOFFSET\s+(\d+)", re.IGNORECASE)
_ORDER = re.compile(r"\bORDER\s+BY\s+([^\n]+)", re.IGNORECASE)


@dataclass
class SparqlAnswer:
    status: int
    body: str
    content_type: str = "application/sparql-results+json"
    headers: dict[str, str] = field(default_factory=dict)
    rows_scanned: int = 0

    @property
    def timed_out(self) -> bool:
        return self.status == 500 and "TimeoutException" in self.body


def evaluate(query: str, entities: Iterable[FakeEntity], max_rows: int | None = None) -> SparqlAnswer:
    """The answer to one top-people ``query`` (400 for any other query)."""
    if not re.search(r"wdt:P31\s+wd:Q5\b", query) or "wdt:P18" not in query:
        return SparqlAnswer(400, "fake SPARQL endpoint: only the top-people query is supported", "text/plain")
    values = _VALUES.search(query)
    occupations = set(re.findall(r"wd:(Q\d+)", values.group(1))) if values else None
    truthy = "wdt:P106" in query
    normal = bool(re.search(r"p:P106\b", query)) and "wikibase:NormalRank" in query
    if occupations is not None and not (truthy or normal):
        return SparqlAnswer(400, "VALUES ?occupation is not joined to P106", "text/plain")
    in_range = _range_test(query)
    if in_range is None:
        # No floor: the service would start from every human (about 12 million).
        return SparqlAnswer(500, TIMEOUT_BODY, "text/plain")

    def holds(e: FakeEntity) -> bool:
        if occupations is None:
            return True
        held = set(e.truthy_occupations() if truthy else ()) | set(e.occupations if normal else ())
        return bool(occupations & held)

    rows = [
        e for e in entities if e.instance_of == "Q5" and (e.images or e.preferred_images) and holds(e) and in_range(e)
    ]
    if max_rows is not None and len(rows) > max_rows:
        return SparqlAnswer(500, TIMEOUT_BODY, "text/plain", rows_scanned=len(rows))
    rows = _ordered(rows, query)
    offset = int(m.group(1)) if (m := _OFFSET.search(query)) else 0
    limit = int(m.group(1)) if (m := _LIMIT.search(query)) else None
    page = rows[offset:] if limit is None else rows[offset : offset + limit]
    body = {
        "head": {"vars": ["item", "sitelinks"]},
        "results": {
            "bindings": [
                {
                    "item": {"type": "uri", "value": ENTITY + e.qid},
                    "sitelinks": {
                        "datatype": "http://www.w3.org/2001/XMLSchema#integer",
                        "type": "literal",
                        "value": str(e.sitelinks),
                    },
                }
                for e in page
            ]
        },
    }
    return SparqlAnswer(200, json.dumps(body), rows_scanned=len(rows))


def _range_test(query: str):  # type: ignore[no-untyped-def]
    """A predicate for the sitelinks condition the query puts, or None when it puts none."""
    if m := _AT.search(query):
        value, after = int(m.group(1)), m.group(2)
        return lambda e: e.sitelinks == value and ENTITY + e.qid > after
    if m := _RANGE.search(query):
        low = int(m.group(1))
        high = int(m.group(2)) if m.group(2) else None
        return lambda e: e.sitelinks >= low and (high is None or e.sitelinks < high)
    return None


def _ordered(rows: list[FakeEntity], query: str) -> list[FakeEntity]:
    order = _ORDER.search(query)
    if order is None:
        # No ORDER BY: whatever order the engine's joins produce.
        return sorted(rows, key=lambda e: hashlib.md5(e.qid.encode()).hexdigest())
    keys = order.group(1)
    if re.match(r"DESC\(\?sitelinks\)", keys):
        return sorted(rows, key=lambda e: (-e.sitelinks, ENTITY + e.qid))
    return sorted(rows, key=lambda e: ENTITY + e.qid)
