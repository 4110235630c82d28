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
  order the photos finish in; the other is skipped as ``duplicate_content``
  (``ownership`` decides, the store stage executes).

This module is the wiring (queues, stage tasks, stopping, outcomes) and the
local fetch and embed stages; the feeder is ``discovery``, the store writes
``storing``, and ``cluster.ClusterCrawler`` replaces the photo stages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sozy.config import Settings
from sozy.faces.errors import EngineClosed, FaceEngineError, ImageError
from sozy.fetch import Fetched, Fetcher, FetchError, policy_for
from sozy.records import FaceRecord, PhotoFaces, utc_now
from sozy.store import FaceStore
from sozy.thumbnails import remove_thumbnails

from .discovery import Discovery
from .engine import CrawlEngine, FaceEmbedder
from .feed import LimitReached
from .lazyengine import EngineStartFailed, LazyEngine
from .naming import candidate_person, face_people
from .outage import HostDown
from .ownership import Analysed, ContentOwnership, settle_batch
from .plan import CrawlPlan
from .reasons import DUPLICATE_CONTENT, SKIP_REASONS, TAKEN_DOWN
from .state import DONE, FAILED, SKIPPED, ContentOwner, CrawlState, Job, Outcome
from .stats import CrawlStats
from .storing import StoreWriter
from .tasks import StateThread, drain, settle
from .thumbnails import write_thumbnails

log = logging.getLogger("sozy.crawl")

# How often the store stage writes what it has, even when its batch is not full.
FLUSH_INTERVAL_S = 1.0
# Outcomes buffered before a write is forced (failures arriving fast).
MAX_BUFFERED_OUTCOMES = 1024
# How long a graceful stop waits for photos already in the engine.
STOP_GRACE_S = 15.0
# Bodies above this are hashed in a thread (hashlib releases the GIL).
_THREAD_HASH_BYTES = 1 << 20

EngineT = TypeVar("EngineT", bound=CrawlEngine)


@dataclass(eq=False)
class _Photo:
    """Fetched, waiting for the engine."""

    job: Job
    body: bytes
    sha256: str


class BaseCrawler(Generic[EngineT]):
    """The wiring of one crawl run over opened resources: queues, stages, state, summary.

    ``run()`` until done, ``stop()`` to end early. Subclasses bring the photo stages:
    ``Crawler`` fetches and embeds here, ``cluster.ClusterCrawler`` on a cluster's nodes.
    """

    def __init__(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        state: CrawlState,
        fetcher: Fetcher,
        engine: EngineT,
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
        self._fetch_workers = settings.crawl.concurrency
        self._embed_workers = max(1, int(engine.capacity))
        self._fetch_q: asyncio.Queue[Job | None] = asyncio.Queue(settings.crawl.queue_size)
        self._embed_q: asyncio.Queue[_Photo | None] = asyncio.Queue(self._embed_workers)
        self._store_q: asyncio.Queue[Analysed | None] = asyncio.Queue(self._embed_workers)
        self._outcomes: list[Outcome] = []
        self._ownership = ContentOwnership()
        self._writer = StoreWriter(settings, store, self.stats)
        self._sources = Discovery(
            settings, plan, db=self._db, fetcher=fetcher, queue=self._fetch_q, stats=self.stats, counts=self.discovery
        )
        self._stop_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._fetchers: list[asyncio.Task[None]] = []
        self._embedders: list[asyncio.Task[None]] = []
        self._failure: BaseException | None = None
        self._data_dir = settings.data_path

    @property
    def lookups(self) -> Counter[str]:
        """Lookups (names, image search, top people) by outcome."""
        return self._sources.lookups.counts

    @property
    def every_lookup_failed(self) -> bool:
        """Lookups were made this run and none succeeded (offline, or a dead endpoint)."""
        return self._sources.lookups.every_failed

    @property
    def sources_down(self) -> dict[str, HostDown]:
        return self._sources.lookups.sources_down

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
            await asyncio.shield(settle(self._tasks))
            self._db.close()

    async def _run(self) -> None:
        self._feeder = self._spawn(self._sources.run(), "feed")
        self._fetchers = [self._spawn(self._fetch_worker(), f"fetch-{i}") for i in range(self._fetch_workers)]
        self._embedders = [self._spawn(self._embed_worker(), f"embed-{i}") for i in range(self._embed_workers)]
        embedders = self._embedders
        storer = self._spawn(self._store_stage(), "store")

        await settle([self._feeder])
        if not self.stopping:
            for _ in self._fetchers:
                await self._put_unless_stopped(self._fetch_q, None)
        await settle(self._fetchers)
        drain(self._fetch_q)

        # Nothing feeds the embed queue any more. When stopping, what waits there
        # is dropped (it stays pending) and the queue has room for every sentinel.
        if self.stopping:
            drain(self._embed_q)
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
                await settle(list(running))
                break
        if not storer.done():
            await self._store_q.put(None)
        await settle([storer])
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
        if isinstance(exc, LimitReached):  # pragma: no cover - handled inside the feeder
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

    # --- photo stages (the subclass's) -------------------------------------------------

    async def _fetch_worker(self) -> None:
        raise NotImplementedError

    async def _embed(self, photo: _Photo) -> Analysed | None:
        raise NotImplementedError

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
        written = await self._writer.write([r for item in batch for r in item.records])
        refused = written.refused
        for item in batch:  # with the labels consensus decided
            item.records = [written.records.get(r.id, r) for r in item.records]
        if refused:
            # Taken down while this crawl ran: the store refused them, their crops go too.
            await asyncio.to_thread(remove_thumbnails, self._data_dir, refused)
        settled = settle_batch(batch, error=written.error, refused=refused)
        for outcome in settled:
            self._count(outcome)
        if written.error is None:
            self.stats.people.update(
                r.person_id for item in batch for r in item.records if r.person_id and r.id not in refused
            )
        outcomes += settled
        if outcomes:
            await self._db(self.state.record, outcomes)
        self._ownership.written()

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


class Crawler(BaseCrawler[FaceEmbedder]):
    """A crawl on this machine: photos fetched here and embedded by the local face engine."""

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
        if not isinstance(self.engine, LazyEngine):
            return
        await self.engine.ensure_started()
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

    # --- embed ------------------------------------------------------------------------

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
        records = face_records(job, photo.sha256, found, self.engine.model_id)
        if records and self.settings.crawl.thumbnails:
            records = await self._with_thumbnails(photo, records)
        return Analysed(job, photo.sha256, records)

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


async def fetch_job(fetcher: Fetcher, job: Job) -> Fetched:
    """Fetch one job's photo as every crawl does (this machine's, or a cluster node's)."""
    return await fetcher.image(
        job.url, referer=job.candidate.page_url, policy=policy_for(job.url, job.candidate.fetch_policy)
    )


def face_records(job: Job, sha: str, found: PhotoFaces, engine_model: str) -> list[FaceRecord]:
    """The faces the engine found in a job's photo, as records to store (named by ``naming``)."""
    cand = job.candidate
    people = face_people(cand, [f.box for f in found.faces])
    now = utc_now()
    model = found.model or engine_model
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


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
