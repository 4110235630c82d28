"""Discovery, the crawl's feeder: the plan's sources, in order, into the fetch queue.

One run feeds, in this order: photos left pending by earlier runs, folders,
URL lists, page walks, then names (the names file, ``--top``) and their
lookups (``lookups``); ``--retry-failed`` feeds failed photos and runs failed
units again instead. Every source is a unit of the state: a page walk or a
lookup done in an earlier run is not repeated. URL lists and folders grow, so
they are streamed again every run; a row the state knows costs one index
lookup. ``--limit`` ends discovery (``feed.LimitReached``); what was not fed
stays for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from sozy.config import Settings
from sozy.fetch import Fetcher
from sozy.records import Candidate
from sozy.sources import PageSource, UrlListReport, read_folders, read_url_list

from .feed import DISCOVERY_CHUNK, JobFeed, LimitReached, reason_of
from .lookups import Lookups
from .plan import FOLDER, GROWING, NAME, PAGE, SEARCH, TOP, URL_LIST, CrawlPlan
from .state import DONE, FAILED, PENDING, Job, UnitKind
from .stats import CrawlStats
from .tasks import StateThread
from .urlkey import normalize_url

log = logging.getLogger("sozy.crawl")

# Pages trickle in one page at a time: small chunks let fetching start early.
PAGE_CHUNK = 16


class Discovery:
    """Feeds the fetch queue from the plan's sources; ``run()`` until they are exhausted."""

    def __init__(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        db: StateThread,
        fetcher: Fetcher,
        queue: asyncio.Queue[Job | None],
        stats: CrawlStats,
        counts: Counter[str],
    ) -> None:
        self.settings = settings
        self.plan = plan
        self._db = db
        self.state = db.state
        self.fetcher = fetcher
        self.stats = stats
        self.counts = counts  # what discovery met that is not a photo outcome: bad list lines, failed pages, ...
        self.feed = JobFeed(queue, plan, db=db, stats=stats, counts=counts)
        self.lookups = Lookups(settings, plan, db=db, fetcher=fetcher, feed=self.feed, stats=stats)

    async def run(self) -> None:
        # Photos of folders crawled in earlier runs may still be pending or failed.
        self.fetcher.local_roots.update(await self._db(self.state.folder_roots))
        if self.plan.search_engine:
            await self.lookups.search_permitted()  # said once, at the start, if robots.txt forbids it
        try:
            if self.plan.retry_failed:
                await self.feed.from_state(FAILED)
                await self._retry_failed_units()
                return
            await self.feed.from_state(PENDING)
            for folder in self.plan.folders:
                await self._discover_folder(folder)
            for path in self.plan.url_lists:
                await self._discover_url_list(path)
            for url in self.plan.pages:
                await self._discover_pages(url)
            if self.plan.names_file is not None:
                await self.lookups.register_names(self.plan.names_file)
            if self.plan.top:
                await self.lookups.register_top(self.plan.top, self.plan.occupations)
            if self.plan.lookup_kinds:
                await self.lookups.run(self.plan.lookup_kinds, PENDING)
        except LimitReached:
            log.info("--limit %d reached: the rest stays for the next run", self.plan.limit)
        finally:
            self.lookups.warnings.flush()

    async def _stream_unit(self, kind: UnitKind, key: str, label: str, candidates: AsyncIterator[Candidate]) -> None:
        """Add a streaming source's candidates in chunks; the unit is done once the stream ends.

        URL lists and folders grow, so they are streamed again every run: a row whose
        URL the state knows costs one index lookup and is left as it is (done photos
        are not fetched again), new rows become new photos. A page walk done in an
        earlier run is not repeated (that would fetch every page again).
        """
        if (
            kind not in GROWING
            and (unit := await self._db(self.state.unit, kind, key)) is not None
            and unit.status == DONE
        ):
            log.info("%s %s: done in an earlier run", kind, label)
            return
        size = PAGE_CHUNK if kind == PAGE else DISCOVERY_CHUNK
        chunk: list[Candidate] = []
        try:
            async with contextlib.aclosing(candidates):  # type: ignore[type-var]
                async for cand in candidates:
                    chunk.append(cand)
                    if len(chunk) >= size:
                        await self.feed.add(chunk)
                        chunk = []
            await self.feed.add(chunk)
        except LimitReached:
            raise
        except Exception as exc:
            reason = reason_of(exc)
            log.warning("%s %s failed: %s", kind, label, exc)
            await self._db(self.state.fail_unit, kind, key, reason, str(exc), label=label)
            self.stats.units_failed[f"{kind}:{reason}"] += 1
            return
        await self._db(self.state.finish_unit, kind, key, label=label)
        self.stats.units_done += 1

    async def _discover_folder(self, root: Path) -> None:
        unnamed = self.settings.crawl.unnamed_folders
        root = Path(root).resolve()
        root_name = await self._db(self.state.name_folder, root)
        self.fetcher.local_roots[root_name] = root

        async def stream() -> AsyncIterator[Candidate]:
            photos = read_folders(root, unnamed=unnamed, root_name=root_name)
            while True:
                # Folder listing is blocking I/O: done in a thread, a chunk at a time.
                chunk = await asyncio.to_thread(lambda: list(itertools.islice(photos, DISCOVERY_CHUNK)))
                if not chunk:
                    return
                for cand in chunk:
                    yield cand

        await self._stream_unit(FOLDER, str(root), str(root), stream())

    async def _discover_url_list(self, path: Path) -> None:
        report = UrlListReport()
        path = Path(path).resolve()
        try:
            await self._stream_unit(URL_LIST, str(path), str(path), read_url_list(path, report=report))
        finally:
            if report.bad:
                self.counts["url_list_bad_lines"] += report.bad
                for reason, n in report.reasons.items():
                    self.counts[f"url_list_{reason}"] += n

    async def _discover_pages(self, start_url: str) -> None:
        key = normalize_url(start_url) or start_url
        source = PageSource(self.fetcher, self.settings.crawl)
        try:
            await self._stream_unit(PAGE, key, start_url, source.candidates([start_url]))
        finally:
            self.counts.update({k: v for k, v in source.counters.items() if v})

    async def _retry_failed_units(self) -> None:
        """Failed lookups, page walks and top-people queries, run again."""
        retried_top = False
        for unit in await self._db(self.state.units, [TOP, PAGE], FAILED, limit=10_000):
            if unit.kind == TOP:
                limit, _, occupations = unit.key.partition("|")
                await self.lookups.register_top(int(limit), [o for o in occupations.split(",") if o])
                retried_top = True
            else:
                await self._discover_pages(unit.label)
        await self.lookups.run((NAME, SEARCH), FAILED)
        if retried_top:  # the names a retried query found
            await self.lookups.run((NAME, SEARCH), PENDING)
