"""The crawl: discover → fetch → embed → store, joined by bounded queues.

::

    feeder ──fetch queue──▶ fetch workers ──embed queue──▶ embed workers ──store queue──▶ store stage
    (state, sources)        (Fetcher, ~concurrency)        (FaceEngine, ~capacity)        (batched upserts,
                                                                                           then state)

- Every queue is bounded, so a list of a million URLs or a slow engine never
  fills memory: a full queue makes the stage before it wait.
- The embed stage runs ``engine.capacity`` tasks at once with as many fetched
  photos queued behind them, so the engine (the slowest stage on a CPU) never
  waits for the network.
- Every photo ends with an outcome in the state: done, failed (reason) or
  skipped (why). An exception on one photo is caught and recorded; it never
  stops the crawl.
- A URL is marked done only after its faces were upserted (the store stage
  records outcomes right after each upsert), so a crawl killed at any moment
  and run again stores nothing twice and loses nothing (point ids are
  deterministic: the same face in the same bytes is the same point).
- The same bytes at two URLs are stored once, for the URL whose source named
  the person, else the one discovered first (``state.content_rank``), whatever
  order the photos finish in; the other is skipped as ``duplicate_content``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sozy.backoff import backoff_seconds
from sozy.config import Settings
from sozy.faces.errors import EngineClosed, FaceEngineError, ImageError
from sozy.fetch import Fetched, Fetcher, FetchError, policy_for
from sozy.records import Candidate, FaceRecord, PhotoFaces, utc_now
from sozy.sources import ImageSearch, PageSource, SourceError, UrlListReport, WikidataNames, read_folders, read_url_list
from sozy.store import FaceStore
from sozy.store.consensus import Consensus, ConsensusRule
from sozy.thumbnails import remove_thumbnails

from .lazyengine import EngineStartFailed
from .naming import candidate_person, face_people
from .outage import FoldedWarnings, HostDown, Outages, unreachable_host
from .ownership import Analysed, ContentOwnership, settle
from .reasons import DUPLICATE_CONTENT, SKIP_REASONS, TAKEN_DOWN
from .shard import Shard, name_key
from .state import (
    DONE,
    FAILED,
    PENDING,
    SKIPPED,
    ContentOwner,
    CrawlState,
    Job,
    Outcome,
    Unit,
    UnitKind,
)
from .stats import CrawlStats
from .thumbnails import write_thumbnails
from .urlkey import normalize_url

log = logging.getLogger("sozy.crawl")

T = TypeVar("T")

# How often the store stage writes what it has, even when its batch is not full.
FLUSH_INTERVAL_S = 1.0
# Outcomes buffered before a write is forced (failures arriving fast).
MAX_BUFFERED_OUTCOMES = 1024
# Name lookups in flight at once (Wikimedia asks API clients to be gentle).
LOOKUP_CONCURRENCY = 4
# Candidates written to the state per transaction while a source streams.
DISCOVERY_CHUNK = 256
# Attempts at one store write before its photos are recorded as failed, and the waits between.
STORE_ATTEMPTS = 3
STORE_BACKOFF_BASE_S = 0.5
STORE_BACKOFF_MAX_S = 5.0
# How long a graceful stop waits for photos already in the engine.
STOP_GRACE_S = 15.0
# Bodies above this are hashed in a thread (hashlib releases the GIL).
_THREAD_HASH_BYTES = 1 << 20

NAME, SEARCH, TOP, URL_LIST, PAGE, FOLDER = (
    UnitKind.NAME,
    UnitKind.SEARCH,
    UnitKind.TOP,
    UnitKind.URL_LIST,
    UnitKind.PAGE,
    UnitKind.FOLDER,
)
# Sources read again by every run, for the rows added since.
GROWING = frozenset({URL_LIST, FOLDER})


@dataclass(frozen=True)
class CrawlPlan:
    """What one run crawls: its sources and how much of them."""

    names_file: Path | None = None
    top: int = 0
    occupations: tuple[str, ...] = ()
    search_engine: bool = False
    url_lists: tuple[Path, ...] = ()
    pages: tuple[str, ...] = ()
    folders: tuple[Path, ...] = ()
    retry_failed: bool = False
    limit: int | None = None
    shard: Shard | None = None

    @property
    def has_sources(self) -> bool:
        return bool(self.names_file or self.top or self.url_lists or self.pages or self.folders)

    @property
    def lookup_kinds(self) -> tuple[str, ...]:
        """Unit kinds whose pending units this run looks up."""
        if not (self.names_file or self.top):
            return ()
        return (NAME, SEARCH) if self.search_engine else (NAME,)

    def describe(self) -> list[str]:
        """The sources as short strings, for logs and the summary."""
        out = [f"folders:{p}" for p in self.folders] + [f"urls:{p}" for p in self.url_lists]
        out += [f"pages:{u}" for u in self.pages]
        if self.names_file:
            out.append(f"names:{self.names_file}")
        if self.top:
            out.append(f"top:{self.top}" + (f" ({', '.join(self.occupations)})" if self.occupations else ""))
        if self.search_engine:
            out.append("search-engine")
        if self.retry_failed:
            out.append("retry-failed")
        return out


@dataclass(eq=False)
class _Photo:
    """Fetched, waiting for the engine."""

    job: Job
    body: bytes
    sha256: str


class _LimitReached(Exception):
    """--limit photos were handed to the fetch stage."""


class StateThread:
    """Runs ``CrawlState`` calls on one dedicated thread, off the event loop."""

    def __init__(self, state: CrawlState) -> None:
        self.state = state
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawl-state")

    async def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class Crawler:
    """One crawl run over opened resources; ``run()`` until done, ``stop()`` to end early."""

    def __init__(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        state: CrawlState,
        fetcher: Fetcher,
        engine: Any,
        store: FaceStore,
        stats: CrawlStats | None = None,
        flush_interval: float = FLUSH_INTERVAL_S,
        stop_grace: float = STOP_GRACE_S,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.state = state
        self.fetcher = fetcher
        self.engine = engine
        self.store = store
        self.stats = stats if stats is not None else CrawlStats()
        # What discovery met that is not a photo outcome: bad list lines, failed pages, ...
        self.discovery: Counter[str] = Counter()
        self.flush_interval = flush_interval
        self.stop_grace = stop_grace
        self._db = StateThread(state)
        self._fetch_workers = max(1, settings.crawl.concurrency)
        self._embed_workers = max(1, int(engine.capacity))
        self._fetch_q: asyncio.Queue[Job | None] = asyncio.Queue(max(1, settings.crawl.queue_size))
        self._embed_q: asyncio.Queue[_Photo | None] = asyncio.Queue(self._embed_workers)
        self._store_q: asyncio.Queue[Analysed | None] = asyncio.Queue(self._embed_workers)
        self._outcomes: list[Outcome] = []
        self._ownership = ContentOwnership()
        self._emitted = 0
        self._stop_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._fetchers: list[asyncio.Task[None]] = []
        self._embedders: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        self._data_dir = settings.data_path
        self._wikidata: WikidataNames | None = None
        # Labels checked against the people's own faces as they are stored (sozy.store.consensus).
        rule = ConsensusRule.from_settings(settings.identity)
        self._consensus = Consensus(store, rule) if settings.identity.consensus else None
        self._search: ImageSearch | None = None
        self._search_allowed: bool | None = None  # robots.txt of the search page, once asked
        # Lookups (names, image search, top people) by outcome, and the kinds stopped by a host down.
        self.lookups: Counter[str] = Counter()
        self.outages = Outages()
        self._lookup_warnings = FoldedWarnings()

    # --- control ---------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stop_at is not None

    def stop(self) -> None:
        """Stop gracefully: discover and fetch nothing more, finish what the engine
        has (up to ``stop_grace`` seconds), store it, write the state. Unstarted
        photos stay pending for the next run."""
        if self._stop_at is not None:
            return
        self._stop_at = time.monotonic()
        log.info("stopping: finishing the photos in the engine, then writing the state")
        if self._feeder is not None:
            self._feeder.cancel()
        for task in self._fetchers:
            task.cancel()

    async def run(self) -> None:
        """Crawl until the sources are exhausted (or ``--limit``, or ``stop()``).

        Cancelling ``run`` is the hard stop: every stage is cancelled at once,
        nothing more is written (what was written is consistent).
        """
        try:
            await self._run()
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.shield(_settle(self._tasks))
            self._db.close()

    async def _run(self) -> None:
        self._feeder = self._spawn(self._feed(), "feed")
        self._fetchers = [self._spawn(self._fetch_worker(), f"fetch-{i}") for i in range(self._fetch_workers)]
        self._embedders = [self._spawn(self._embed_worker(), f"embed-{i}") for i in range(self._embed_workers)]
        embedders = self._embedders
        storer = self._spawn(self._store_stage(), "store")

        await _settle([self._feeder])
        if not self.stopping:
            for _ in self._fetchers:
                await self._put_unless_stopped(self._fetch_q, None)
        await _settle(self._fetchers)
        _drain(self._fetch_q)

        # Nothing feeds the embed queue any more. When stopping, what waits there
        # is dropped (it stays pending) and the queue has room for every sentinel.
        if self.stopping:
            _drain(self._embed_q)
        for _ in embedders:
            await self._embed_q.put(None)
        while True:
            _, running = await asyncio.wait(embedders, timeout=0.2)
            if not running:
                break
            if self._stop_at is not None and time.monotonic() - self._stop_at > self.stop_grace:
                log.warning(
                    "stopping: %d photo(s) still in the engine after %.0f s stay pending", len(running), self.stop_grace
                )
                for task in running:
                    task.cancel()
                await _settle(list(running))
                break
        if not storer.done():
            await self._store_q.put(None)
        await _settle([storer])
        if self._failure is not None:
            raise self._failure

    def _spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(f"crawl-{name}")
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)
        return task

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, _LimitReached):  # pragma: no cover - handled inside the feeder
            return
        # A stage died of a bug or of the state file failing: stop everything
        # rather than hang with a stage missing.
        if not isinstance(exc, EngineStartFailed):  # that one is reported once, by the runner
            log.error("crawl stage %s failed: %r", task.get_name(), exc, exc_info=exc)
        if self._failure is None:
            self._failure = exc
        self.stop()
        for other in self._tasks:
            if other is not task and not other.done() and other.get_name() != "crawl-store":
                other.cancel()

    async def _put_unless_stopped(self, queue: asyncio.Queue[Any], item: Any) -> None:
        while not self.stopping:
            try:
                await asyncio.wait_for(queue.put(item), timeout=0.5)
                return
            except TimeoutError:
                continue

    # --- discovery (the feeder) --------------------------------------------------------

    async def _feed(self) -> None:
        # Photos of folders crawled in earlier runs may still be pending or failed.
        self.fetcher.local_roots.update(await self._db(self.state.folder_roots))
        if self.plan.search_engine:
            await self._search_permitted()  # said once, at the start, if robots.txt forbids it
        try:
            if self.plan.retry_failed:
                await self._feed_from_state(FAILED)
                await self._retry_failed_units()
                return
            await self._feed_from_state(PENDING)
            for folder in self.plan.folders:
                await self._discover_folder(folder)
            for path in self.plan.url_lists:
                await self._discover_url_list(path)
            for url in self.plan.pages:
                await self._discover_pages(url)
            if self.plan.names_file is not None:
                await self._register_names(self.plan.names_file)
            if self.plan.top:
                await self._register_top(self.plan.top, self.plan.occupations)
            if self.plan.lookup_kinds:
                await self._lookup_units(self.plan.lookup_kinds, PENDING)
        except _LimitReached:
            log.info("--limit %d reached: the rest stays for the next run", self.plan.limit)
        finally:
            self._lookup_warnings.flush()

    @property
    def every_lookup_failed(self) -> bool:
        """Lookups were made this run and none succeeded (offline, or a dead endpoint)."""
        return self.lookups["done"] == 0 and (self.lookups["failed"] > 0 or bool(self.outages.down))

    @property
    def sources_down(self) -> dict[str, HostDown]:
        return dict(self.outages.down)

    async def _lookup_failed(self, kind: str, key: str, label: str, exc: Exception) -> None:
        """Record a failed lookup; fold repeated warnings; when its host is found down, stop its
        kind and put the lookups that failed on the way back to pending."""
        reason = _reason_of(exc)
        await self._db(self.state.fail_unit, kind, key, reason, str(exc), label=label)
        self.stats.units_failed[f"{kind}:{reason}"] += 1
        self.lookups["failed"] += 1
        self._lookup_warnings.warn(kind, reason, "%s lookup %r failed: %s", kind, label, exc)
        outage = self.outages.failure(kind, exc, key)
        if outage is None:
            return
        log.error("%s", outage.message(self._setting_hint(outage.host)))
        await self._db(self.state.requeue_units, kind, [k for k, _ in outage.failed])
        for _, why in outage.failed:
            self.stats.units_failed[f"{kind}:{why}"] -= 1
        self.stats.units_failed = +self.stats.units_failed  # drop the zeros
        self.lookups["failed"] -= len(outage.failed)
        self.lookups["not_tried"] += len(outage.failed)

    def _setting_hint(self, host: str) -> str:
        """Which setting names ``host``, for the line that says what to check."""
        crawl = self.settings.crawl
        for key in ("wikidata_api", "commons_api", "sparql_url", "search_url"):
            url = getattr(crawl, key)
            if urlsplit(url).netloc == host:
                return f"crawl.{key} ({url})"
        return "the source's URL settings (crawl.wikidata_api, crawl.commons_api, crawl.sparql_url)"

    async def _emit(self, jobs: Iterable[Job], *, resumed: bool = False) -> None:
        for job in jobs:
            self._check_limit()
            await self._fetch_q.put(job)
            self._emitted += 1
            self.stats.mark("discovered")
            if resumed:
                self.stats.resumed += 1

    def _check_limit(self) -> None:
        if self.plan.limit is not None and self._emitted >= self.plan.limit:
            raise _LimitReached()

    async def _feed_from_state(self, status: str) -> None:
        """Photos left ``status`` by earlier runs, oldest first (those discovered now come after)."""
        upto = await self._db(self.state.max_seq)
        after = 0
        while True:
            self._check_limit()
            jobs = await self._db(self.state.jobs, status, after_seq=after, upto_seq=upto, limit=DISCOVERY_CHUNK)
            if not jobs:
                return
            after = jobs[-1].seq
            await self._emit(jobs, resumed=True)

    def _keyed(self, candidates: Iterable[Candidate], *, shard_by_url: bool) -> list[tuple[str, Candidate]]:
        """(state key, candidate) for candidates with a usable URL (and, if asked, in our shard)."""
        keyed = []
        for cand in candidates:
            key = normalize_url(cand.image_url)
            if key is None:
                self.discovery["bad_image_url"] += 1
                log.debug("not a photo URL, ignored: %r", cand.image_url)
                continue
            if shard_by_url and self.plan.shard is not None and not self.plan.shard.owns(key):
                self.discovery["other_shard"] += 1
                continue
            keyed.append((key, cand if cand.image_url == key else dataclasses.replace(cand, image_url=key)))
        return keyed

    async def _add_and_emit(self, candidates: Sequence[Candidate]) -> None:
        keyed = self._keyed(candidates, shard_by_url=True)
        if keyed:
            await self._emit(await self._db(self.state.add_jobs, keyed))

    async def _stream_unit(self, kind: str, key: str, label: str, candidates: AsyncIterator[Candidate]) -> None:
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
        chunk: list[Candidate] = []
        try:
            async with contextlib.aclosing(candidates):  # type: ignore[type-var]
                async for cand in candidates:
                    chunk.append(cand)
                    if len(chunk) >= self._chunk_size(kind):
                        await self._add_and_emit(chunk)
                        chunk = []
            await self._add_and_emit(chunk)
        except _LimitReached:
            raise
        except Exception as exc:
            reason = _reason_of(exc)
            log.warning("%s %s failed: %s", kind, label, exc)
            await self._db(self.state.fail_unit, kind, key, reason, str(exc), label=label)
            self.stats.units_failed[f"{kind}:{reason}"] += 1
            return
        await self._db(self.state.finish_unit, kind, key, label=label)
        self.stats.units_done += 1

    @staticmethod
    def _chunk_size(kind: str) -> int:
        # Pages trickle in one page at a time: small chunks let fetching start early.
        return 16 if kind == PAGE else DISCOVERY_CHUNK

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
                self.discovery["url_list_bad_lines"] += report.bad
                for reason, n in report.reasons.items():
                    self.discovery[f"url_list_{reason}"] += n

    async def _discover_pages(self, start_url: str) -> None:
        key = normalize_url(start_url) or start_url
        source = PageSource(self.fetcher, self.settings.crawl)
        try:
            await self._stream_unit(PAGE, key, start_url, source.candidates([start_url]))
        finally:
            self.discovery.update({k: v for k, v in source.counters.items() if v})

    async def _register_names(self, path: Path) -> None:
        """Every name in the file becomes a pending lookup unit (once; done ones stay done)."""
        kinds = (NAME, SEARCH) if self.plan.search_engine else (NAME,)
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

    async def _register_top(self, limit: int, occupations: Sequence[str]) -> None:
        """The SPARQL top people become pending name units; the query itself is a unit."""
        key = f"{limit}|{','.join(sorted(o.casefold() for o in occupations))}"
        unit = await self._db(self.state.unit, TOP, key)
        if unit is not None and unit.status == DONE and not self.plan.retry_failed:
            return
        kinds = (NAME, SEARCH) if self.plan.search_engine else (NAME,)
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
            await self._lookup_failed(TOP, key, label, exc)
            return
        self.lookups["done"] += 1
        self.outages.success(TOP)
        await self._db(self.state.finish_unit, TOP, key, label=label)
        self.stats.units_done += 1

    async def _lookup_units(self, kinds: Sequence[str], status: str) -> None:
        if SEARCH in kinds and not await self._search_permitted():
            kinds = [k for k in kinds if k != SEARCH]
        """Look units up a few at a time, but take their results in order (reproducible seqs)."""
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
                        self.lookups["not_tried"] += 1  # stays pending for the next run
                        continue
                    self._check_limit()
                    window.append((unit, asyncio.ensure_future(self._lookup(unit))))
                    if len(window) >= LOOKUP_CONCURRENCY:
                        await self._finish_lookup(*window.popleft())
            while window:
                await self._finish_lookup(*window.popleft())
        finally:
            for _, task in window:
                task.cancel()
            await _settle([task for _, task in window])

    async def _lookup(self, unit: Unit) -> list[Candidate]:
        if unit.kind == SEARCH:
            return await self._image_search().lookup_person(unit.label, self._wikidata_source())
        return await self._wikidata_source().lookup(unit.label)

    def _image_search(self) -> ImageSearch:
        if self._search is None:
            self._search = ImageSearch(self.fetcher, self.settings.crawl)
        return self._search

    async def _search_permitted(self) -> bool:
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

    async def _finish_lookup(self, unit: Unit, task: asyncio.Task[list[Candidate]]) -> None:
        try:
            candidates = await task
        except Exception as exc:
            if self.outages.stopped(unit.kind) and unreachable_host(exc) is not None:
                self.lookups["not_tried"] += 1  # in flight when its host was found down: stays pending
                return
            await self._lookup_failed(unit.kind, unit.key, unit.label, exc)
            return
        self.lookups["done"] += 1
        self.outages.success(unit.kind)
        # Photos found through a name belong to the name's shard: no URL split here.
        jobs = await self._db(self.state.finish_unit, unit.kind, unit.key, self._keyed(candidates, shard_by_url=False))
        self.stats.units_done += 1
        await self._emit(jobs)

    def _wikidata_source(self) -> WikidataNames:
        if self._wikidata is None:
            self._wikidata = WikidataNames(self.fetcher, self.settings.crawl)
        return self._wikidata

    async def _retry_failed_units(self) -> None:
        """Failed lookups, page walks and top-people queries, run again."""
        retried_top = False
        for unit in await self._db(self.state.units, [TOP, PAGE], FAILED, limit=10_000):
            if unit.kind == TOP:
                limit, _, occupations = unit.key.partition("|")
                await self._register_top(int(limit), [o for o in occupations.split(",") if o])
                retried_top = True
            else:
                await self._discover_pages(unit.label)
        await self._lookup_units((NAME, SEARCH), FAILED)
        if retried_top:  # the names a retried query found
            await self._lookup_units((NAME, SEARCH), PENDING)

    # --- fetch ------------------------------------------------------------------------

    async def _fetch_worker(self) -> None:
        while True:
            job = await self._fetch_q.get()
            if job is None:
                return
            await self._engine_ready()
            photo = await self._fetch(job)
            if photo is not None:
                await self._embed_q.put(photo)

    async def _engine_ready(self) -> None:
        """Start a lazy engine with the first photo, before fetching it: a run with nothing to
        fetch never loads the models, and downloads do not compete with their loading."""
        ensure_started = getattr(self.engine, "ensure_started", None)
        if ensure_started is None:
            return
        await ensure_started()
        # A GPU engine takes more photos at once than the estimate the stage was sized with.
        while len(self._embedders) < self.engine.capacity and not self.stopping:
            self._embedders.append(self._spawn(self._embed_worker(), f"embed-{len(self._embedders)}"))

    async def _fetch(self, job: Job) -> _Photo | None:
        if await self._taken_down(job):
            return None
        try:
            fetched = await fetch_job(self.fetcher, job)
        except FetchError as exc:
            self._record_error(job, exc.reason, str(exc))
            return None
        except Exception as exc:
            log.exception("fetching %s failed unexpectedly", job.url)
            self._record_error(job, "error", repr(exc))
            return None
        body = fetched.body
        self.stats.mark("fetched")
        self.stats.fetched_bytes += len(body)
        if len(body) > _THREAD_HASH_BYTES:
            sha = await asyncio.to_thread(_sha256, body)
        else:
            sha = _sha256(body)
        if await self._taken_down(job, sha):
            return None
        if (owner := self._ownership.beaten_by(job, sha, await self._stored_owner(sha))) is not None:
            self._record(Outcome(job.url, SKIPPED, DUPLICATE_CONTENT, sha256=sha, duplicate_of=owner.url))
            return None
        return _Photo(job, body, sha)

    async def _taken_down(self, job: Job, sha: str | None = None) -> bool:
        """Skip a photo a takedown covers: asked before fetching (by URL, page, name, source)
        and again with its sha256 (the same bytes taken down at another URL)."""
        cand = job.candidate
        fields = {
            "image_url": job.url,
            "page_url": cand.page_url,
            "name": cand.name,
            "source": cand.source,
            "person_id": candidate_person(cand).person_id,
        }
        if sha is not None:
            fields["image_sha256"] = sha
        if not await self.store.taken_down(fields):
            return False
        self._record(Outcome(job.url, SKIPPED, TAKEN_DOWN, sha256=sha))
        return True

    # --- embed ------------------------------------------------------------------------

    async def _embed_worker(self) -> None:
        while True:
            photo = await self._embed_q.get()
            if photo is None:
                return
            if self.stopping:
                continue  # not started: stays pending for the next run
            analysed = await self._embed(photo)
            if analysed is not None:
                await self._store_q.put(analysed)

    async def _embed(self, photo: _Photo) -> Analysed | None:
        job = photo.job
        try:
            found: PhotoFaces = await self.engine.embed(photo.body)
        except EngineClosed:
            return None  # shutting down: stays pending
        except FaceEngineError as exc:
            code = getattr(exc, "code", "engine_failed")
            self._record_error(job, code, str(exc), sha256=photo.sha256 if isinstance(exc, ImageError) else None)
            return None
        except Exception as exc:
            log.exception("embedding %s failed unexpectedly", job.url)
            self._record_error(job, "error", repr(exc))
            return None
        self.stats.mark("embedded")
        self.stats.faces_found += len(found.faces)
        records = self._face_records(job, photo.sha256, found)
        if records and self.settings.crawl.thumbnails:
            records = await self._with_thumbnails(photo, records)
        return Analysed(job, photo.sha256, records)

    def _face_records(self, job: Job, sha: str, found: PhotoFaces) -> list[FaceRecord]:
        cand = job.candidate
        people = face_people(cand, [f.box for f in found.faces])
        now = utc_now()
        model = found.model or self.engine.model_id
        return [
            FaceRecord(
                vector=face.vector,
                image_url=job.url,
                box=face.box,
                image_width=found.width,
                image_height=found.height,
                image_sha256=sha,
                faces_in_image=max(found.faces_in_image, len(found.faces)),
                source=cand.source,
                model=model,
                page_url=cand.page_url,
                name=person.name,
                person_id=person.person_id,
                label=person.label,
                reference=person.reference,
                license=cand.license,
                license_url=cand.license_url,
                attribution=cand.attribution,
                attribution_required=cand.attribution_required,
                restrictions=cand.restrictions,
                crawled_at=now,
            )
            for face, person in zip(found.faces, people, strict=True)
        ]

    async def _with_thumbnails(self, photo: _Photo, records: list[FaceRecord]) -> list[FaceRecord]:
        try:
            paths = await write_thumbnails(
                self._data_dir,
                photo.body,
                [(r.id, r.box) for r in records],
                self.settings.crawl.thumbnail_px,
                self.settings.engine.max_pixels,
            )
        except Exception as exc:  # a thumbnail is a nicety: the faces are stored without it
            log.warning("thumbnails for %s failed: %r", photo.job.url, exc)
            self.discovery["thumbnail_failed"] += 1
            return records
        return [dataclasses.replace(r, thumbnail=p) for r, p in zip(records, paths, strict=True)]

    # --- store ------------------------------------------------------------------------

    async def _store_stage(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.flush_interval
        while True:
            try:
                item = await asyncio.wait_for(self._store_q.get(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                item = False  # type: ignore[assignment]
            if item is None:
                await self._flush()
                return
            if item:
                await self._accept(item)
            if (
                self._ownership.faces >= self.settings.store.upsert_batch
                or len(self._outcomes) >= MAX_BUFFERED_OUTCOMES
                or loop.time() >= deadline
            ):
                await self._flush()
                deadline = loop.time() + self.flush_interval

    async def _stored_owner(self, sha: str) -> ContentOwner | None:
        """The state's owner of a content, asked only when none was claimed since the last write."""
        return None if self._ownership.claimed(sha) else await self._db(self.state.content_owner, sha)

    async def _accept(self, item: Analysed) -> None:
        """Decide, one photo at a time, which URL a content belongs to, and batch its faces."""
        for outcome in self._ownership.accept(item, await self._stored_owner(item.sha256)):
            self._record(outcome)

    async def _flush(self) -> None:
        """Upsert the batch, then write every outcome gathered since the last flush."""
        batch = self._ownership.take_batch()
        outcomes, self._outcomes = self._outcomes, []
        records = [r for item in batch for r in item.records]
        error, refused, checked = await self._upsert(records) if records else (None, set(), {})
        for item in batch:  # with the labels consensus decided
            item.records = [checked.get(r.id, r) for r in item.records]
        if refused:
            # Taken down while this crawl ran: the store refused them, their crops go too.
            await asyncio.to_thread(remove_thumbnails, self._data_dir, refused)
        settled = settle(batch, error=error, refused=refused)
        for outcome in settled:
            self._count(outcome)
        if error is None:
            self.stats.people.update(
                r.person_id for item in batch for r in item.records if r.person_id and r.id not in refused
            )
        outcomes += settled
        if outcomes:
            await self._db(self.state.record, outcomes)
        self._ownership.written()

    async def _upsert(self, records: list[FaceRecord]) -> tuple[str | None, set[str], dict[str, FaceRecord]]:
        """Check the labels (consensus), then upsert in store-sized chunks, retrying a few times:
        the error text if it still fails, the ids the store refused (a takedown matches them)
        and the records as written, by id."""
        size = max(1, self.settings.store.upsert_batch)
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                refused: set[str] = set()
                written, updates = records, {}
                if self._consensus is not None:
                    result = await self._consensus.check(records)
                    written, updates = result.records, result.updates
                    self.stats.relabelled["rejected"] += result.rejected
                    self.stats.relabelled["attached"] += result.attached
                # Stored faces first: a crash before the new ones are written leaves a state
                # that checking the batch again (its photos are not done) decides the same way.
                await self.store.set_payloads(updates)
                for start in range(0, len(written), size):
                    refused.update(await self.store.upsert(written[start : start + size]))
                return None, refused, {r.id: r for r in written}
            except Exception as exc:
                if attempt == STORE_ATTEMPTS:
                    log.error("store write of %d faces failed %d times: %r", len(records), attempt, exc)
                    return f"{type(exc).__name__}: {exc}", set(), {}
                log.warning("store write failed (%r), retrying", exc)
                await asyncio.sleep(backoff_seconds(attempt, STORE_BACKOFF_BASE_S, STORE_BACKOFF_MAX_S))
        return None, set(), {}  # pragma: no cover

    # --- outcomes ---------------------------------------------------------------------

    def _record(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        if outcome.status == DONE:
            self.stats.mark("done")
            self.stats.mark("stored", outcome.faces or 0)
        elif outcome.status == SKIPPED:
            self.stats.skip(outcome.reason or "")
        elif outcome.status == FAILED:
            self.stats.fail(outcome.reason or "")

    def _record_error(self, job: Job, reason: str, error: str, *, sha256: str | None = None) -> None:
        status = SKIPPED if reason in SKIP_REASONS else FAILED
        self._record(Outcome(job.url, status, reason, error=error[:500], sha256=sha256))


async def fetch_job(fetcher: Fetcher, job: Job) -> Fetched:
    """Fetch one job's photo as every crawl does (this machine's, or a cluster node's)."""
    return await fetcher.image(
        job.url, referer=job.candidate.page_url, policy=policy_for(job.url, job.candidate.fetch_policy)
    )


def _reason_of(exc: BaseException) -> str:
    if isinstance(exc, (FetchError, SourceError)):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, OSError):
        return "os_error"
    return "error"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _drain(queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            queue.get_nowait()


async def _settle(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait for tasks to end, however they end (their errors are handled by callbacks)."""
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
