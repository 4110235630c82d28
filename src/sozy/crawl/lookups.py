"""Names to photos: the names file and ``--top`` become lookup units, looked up a few at a time.

A name is a pending unit of each lookup kind (Wikidata, and image search with
``--search-engine``) until its lookup is done; the photos a lookup finds become
jobs in the same transaction. Lookups run ``LOOKUP_CONCURRENCY`` at once but
their results are taken in order, so discovery order (and with it content
ownership) is reproducible. A host found down stops its kind for the run, and
the lookups that failed on the way there go back to pending (``outage``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from sozy.config import Settings
from sozy.fetch import Fetcher
from sozy.records import Candidate
from sozy.sources import ImageSearch, WikidataNames

from .feed import DISCOVERY_CHUNK, JobFeed, reason_of
from .outage import FoldedWarnings, HostDown, Outages, unreachable_host
from .plan import SEARCH, TOP, CrawlPlan
from .shard import name_key
from .state import DONE, Status, Unit, UnitKind
from .stats import CrawlStats
from .tasks import StateThread, settle

log = logging.getLogger("sozy.crawl")

# Name lookups in flight at once (Wikimedia asks API clients to be gentle).
LOOKUP_CONCURRENCY = 4


class Lookups:
    """Registers names as units and looks units up; counts lookups by outcome (``counts``)."""

    def __init__(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        db: StateThread,
        fetcher: Fetcher,
        feed: JobFeed,
        stats: CrawlStats,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self._db = db
        self.state = db.state
        self.fetcher = fetcher
        self.feed = feed
        self.stats = stats
        self.discovery = feed.counts
        # Lookups (names, image search, top people) by outcome, and the kinds stopped by a host down.
        self.counts: Counter[str] = Counter()
        self.outages = Outages()
        self.warnings = FoldedWarnings()
        self._wikidata: WikidataNames | None = None
        self._search: ImageSearch | None = None
        self._search_allowed: bool | None = None  # robots.txt of the search page, once asked

    @property
    def every_failed(self) -> bool:
        """Lookups were made this run and none succeeded (offline, or a dead endpoint)."""
        return self.counts["done"] == 0 and (self.counts["failed"] > 0 or bool(self.outages.down))

    @property
    def sources_down(self) -> dict[str, HostDown]:
        return dict(self.outages.down)

    async def register_names(self, path: Path) -> None:
        """Every name in the file becomes a pending lookup unit (once; done ones stay done)."""
        kinds = self.plan.name_kinds
        shard = self.plan.shard

        def read_chunks() -> Iterable[tuple[list[tuple[str, str]], int]]:
            """(names of our shard, names of other shards) per chunk of lines."""
            with open(path, encoding="utf-8-sig") as fh:
                while lines := list(itertools.islice(fh, DISCOVERY_CHUNK)):
                    chunk, others = [], 0
                    for line in lines:
                        label = " ".join(line.split())
                        if not label or label.startswith("#"):
                            continue
                        key = name_key(label)
                        if shard is not None and not shard.owns(key):
                            others += 1
                        else:
                            chunk.append((key, label))
                    yield chunk, others

        try:
            chunks = iter(read_chunks())
            while (read := await asyncio.to_thread(next, chunks, None)) is not None:
                chunk, others = read
                self.discovery["other_shard_names"] += others
                for kind in kinds:
                    await self._db(self.state.add_units, kind, chunk)
        except (OSError, UnicodeDecodeError) as exc:
            log.error("names file %s: %s", path, exc)
            self.discovery["names_file_error"] += 1

    async def register_top(self, limit: int, occupations: Sequence[str]) -> None:
        """The SPARQL top people become pending name units; the query itself is a unit."""
        key = f"{limit}|{','.join(sorted(o.casefold() for o in occupations))}"
        unit = await self._db(self.state.unit, TOP, key)
        if unit is not None and unit.status == DONE and not self.plan.retry_failed:
            return
        kinds = self.plan.name_kinds
        label = f"top {limit}" + (f" ({', '.join(occupations)})" if occupations else "")
        chunk: list[tuple[str, str]] = []
        try:
            top = self._wikidata_source().top_people(
                limit, occupations, min_sitelinks=self.settings.crawl.top_min_sitelinks
            )
            async for qid in top:
                name = name_key(qid)
                if self.plan.shard is not None and not self.plan.shard.owns(name):
                    self.discovery["other_shard_names"] += 1
                    continue
                chunk.append((name, qid))
                if len(chunk) >= DISCOVERY_CHUNK:
                    for kind in kinds:
                        await self._db(self.state.add_units, kind, chunk)
                    chunk = []
            for kind in kinds:
                await self._db(self.state.add_units, kind, chunk)
        except Exception as exc:
            await self._failed(TOP, key, label, exc)
            return
        self.counts["done"] += 1
        self.outages.success(TOP)
        await self._db(self.state.finish_unit, TOP, key, label=label)
        self.stats.units_done += 1

    async def run(self, kinds: Sequence[UnitKind], status: Status) -> None:
        """Look units up a few at a time, but take their results in order (reproducible seqs)."""
        if SEARCH in kinds and not await self.search_permitted():
            kinds = [k for k in kinds if k != SEARCH]
        window: deque[tuple[Unit, asyncio.Task[list[Candidate]]]] = deque()
        after = 0
        try:
            while True:
                units = await self._db(self.state.units, kinds, status, after_id=after, limit=DISCOVERY_CHUNK)
                if not units:
                    break
                after = units[-1].id
                for unit in units:
                    if self.outages.stopped(unit.kind):
                        self.counts["not_tried"] += 1  # stays pending for the next run
                        continue
                    self.feed.check_limit()
                    window.append((unit, asyncio.ensure_future(self._lookup(unit))))
                    if len(window) >= LOOKUP_CONCURRENCY:
                        await self._finish(*window.popleft())
            while window:
                await self._finish(*window.popleft())
        finally:
            for _, task in window:
                task.cancel()
            await settle([task for _, task in window])

    async def _lookup(self, unit: Unit) -> list[Candidate]:
        if unit.kind == SEARCH:
            return await self._image_search().lookup_person(unit.label, self._wikidata_source())
        return await self._wikidata_source().lookup(unit.label)

    async def _finish(self, unit: Unit, task: asyncio.Task[list[Candidate]]) -> None:
        try:
            candidates = await task
        except Exception as exc:
            if self.outages.stopped(unit.kind) and unreachable_host(exc) is not None:
                self.counts["not_tried"] += 1  # in flight when its host was found down: stays pending
                return
            await self._failed(unit.kind, unit.key, unit.label, exc)
            return
        self.counts["done"] += 1
        self.outages.success(unit.kind)
        # Photos found through a name belong to the name's shard: no URL split here.
        keyed = self.feed.keyed(candidates, shard_by_url=False)
        jobs = await self._db(self.state.finish_unit, unit.kind, unit.key, keyed)
        self.stats.units_done += 1
        await self.feed.emit(jobs)

    async def search_permitted(self) -> bool:
        """Whether the search page's robots.txt lets us in; if not, said once, loudly, and counted."""
        if self._search_allowed is None:
            refusal = await self._image_search().refusal()
            self._search_allowed = refusal is None
            if refusal is not None:
                self.discovery["search_disallowed_by_robots_txt"] = 1
                log.error("=" * 72)
                log.error("IMAGE SEARCH IS OFF: %s", refusal)
                log.error("No --search-engine lookup will be made in this run (they stay pending).")
                log.error("=" * 72)
        return self._search_allowed

    def _image_search(self) -> ImageSearch:
        if self._search is None:
            self._search = ImageSearch(self.fetcher, self.settings.crawl)
        return self._search

    def _wikidata_source(self) -> WikidataNames:
        if self._wikidata is None:
            self._wikidata = WikidataNames(self.fetcher, self.settings.crawl)
        return self._wikidata

    async def _failed(self, kind: UnitKind, key: str, label: str, exc: Exception) -> None:
        """Record a failed lookup; fold repeated warnings; when its host is found down, stop its
        kind and put the lookups that failed on the way back to pending."""
        reason = reason_of(exc)
        await self._db(self.state.fail_unit, kind, key, reason, str(exc), label=label)
        self.stats.units_failed[f"{kind}:{reason}"] += 1
        self.counts["failed"] += 1
        self.warnings.warn(kind, reason, "%s lookup %r failed: %s", kind, label, exc)
        outage = self.outages.failure(kind, exc, key)
        if outage is None:
            return
        log.error("%s", outage.message(self._setting_hint(outage.host)))
        await self._db(self.state.requeue_units, kind, [k for k, _ in outage.failed])
        for _, why in outage.failed:
            self.stats.units_failed[f"{kind}:{why}"] -= 1
        self.stats.units_failed = +self.stats.units_failed  # drop the zeros
        self.counts["failed"] -= len(outage.failed)
        self.counts["not_tried"] += len(outage.failed)

    def _setting_hint(self, host: str) -> str:
        """Which setting names ``host``, for the line that says what to check."""
        crawl = self.settings.crawl
        for key in ("wikidata_api", "commons_api", "sparql_url", "search_url"):
            url = getattr(crawl, key)
            if urlsplit(url).netloc == host:
                return f"crawl.{key} ({url})"
        return "the source's URL settings (crawl.wikidata_api, crawl.commons_api, crawl.sparql_url)"
