"""The crawl on a cluster: the same wiring as ``Crawler``, with fetch and embed done by the nodes.

Discovery, the state, content ownership, naming and the store stage are the
crawl's own code (``pipeline.BaseCrawler``), run once, on the driver. Only the
photo stages differ:
its workers take the fetch queue's jobs in batches of ``crawl.cluster_batch``,
hand each batch to the cluster (``ClusterEngine.process``: the first node with
room fetches and embeds it) and turn what comes back into outcomes and faces
for the store stage, exactly as the local fetch and embed stages would. A
photo embedded but not stored when the driver dies stays pending, and its
point ids are the same when it is done again: nothing is lost, nothing twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from sozy.config import Settings
from sozy.fetch import Fetcher
from sozy.records import FaceRecord
from sozy.store import FaceStore

from ..ownership import Analysed
from ..pipeline import FLUSH_INTERVAL_S, STOP_GRACE_S, BaseCrawler, face_records
from ..plan import CrawlPlan
from ..state import CrawlState, Job
from ..stats import CrawlStats
from ..thumbnails import save_thumbnails
from .engine import LANES_PER_NODE, BatchLost, ClusterEngine
from .node import PhotoResult

log = logging.getLogger("sozy.crawl")

# Batches formed and waiting for a node, at least (more with many nodes).
MIN_BATCH_WORKERS = 16


class ClusterCrawler(BaseCrawler[ClusterEngine]):
    """A ``Crawler`` whose fetch and embed stages run on a Ray cluster (``ClusterEngine``)."""

    def __init__(
        self,
        settings: Settings,
        plan: CrawlPlan,
        *,
        state: CrawlState,
        fetcher: Fetcher,
        engine: ClusterEngine,
        store: FaceStore,
        stats: CrawlStats | None = None,
        flush_interval: float = FLUSH_INTERVAL_S,
        stop_grace: float = STOP_GRACE_S,
    ) -> None:
        super().__init__(
            settings,
            plan,
            state=state,
            fetcher=fetcher,
            engine=engine,
            store=store,
            stats=stats,
            flush_interval=flush_interval,
            stop_grace=stop_grace,
        )
        self._batch_size = settings.crawl.cluster_batch
        # Fetch workers become batch workers: each forms a batch and waits for a node to take it.
        self._fetch_workers = max(MIN_BATCH_WORKERS, 2 * LANES_PER_NODE * len(engine.nodes))
        self._store_q = asyncio.Queue(2 * self._batch_size)

    async def _fetch_worker(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            jobs = [job for job in batch if not await self._taken_down(job)]
            if not jobs:
                continue
            try:
                # Folder photos (file:<folder>/...) are read by the node, at the driver's paths.
                node, result = await self.engine.process(jobs, dict(self.fetcher.local_roots))
            except BatchLost as exc:  # failed, not the crawl: --retry-failed tries them again
                for job in jobs:
                    self._record_error(job, exc.code, str(exc))
                continue
            # The summary's fetch counters are the whole crawl's: the driver's and every node's.
            self.fetcher.counters.update(result.counters)
            for job, photo in zip(jobs, result.photos, strict=True):
                analysed = await self._settle(node, job, photo)
                if analysed is not None:
                    await self._store_q.put(analysed)

    async def _next_batch(self) -> list[Job] | None:
        """Up to ``cluster_batch`` jobs: one waited for, the rest already queued; None at the end."""
        first = await self._fetch_q.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < self._batch_size and not self._fetch_q.empty():
            job = self._fetch_q.get_nowait()
            if job is None:
                # The end: another worker's sentinel. Put it back; this batch is the last one here.
                self._fetch_q.put_nowait(job)
                break
            batch.append(job)
        return batch

    async def _settle(self, node: str, job: Job, photo: PhotoResult) -> Analysed | None:
        """What the local fetch and embed stages do with a photo, done with a node's results."""
        counts = self.stats.node(node)
        if photo.pending:
            return None
        if photo.fetched_bytes:
            self.stats.mark("fetched")
            self.stats.fetched_bytes += photo.fetched_bytes
        if photo.reason is not None:
            counts["failed"] += 1
            self._record_error(job, photo.reason, photo.error, sha256=photo.sha256)
            return None
        assert photo.sha256 is not None and photo.faces is not None
        if await self._taken_down(job, photo.sha256):
            return None
        counts["photos"] += 1
        counts["faces"] += len(photo.faces.faces)
        self.stats.mark("embedded")
        self.stats.faces_found += len(photo.faces.faces)
        records = face_records(job, photo.sha256, photo.faces, self.engine.model_id)
        if records and self.settings.crawl.thumbnails:
            records = await self._with_crops(job, records, photo.crops)
        return Analysed(job, photo.sha256, records)

    async def _with_crops(self, job: Job, records: list[FaceRecord], crops: tuple[bytes, ...]) -> list[FaceRecord]:
        if len(crops) != len(records):
            self.discovery["thumbnail_failed"] += 1
            return records
        try:
            paths = await save_thumbnails(self._data_dir, [(r.id, c) for r, c in zip(records, crops, strict=True)])
        except Exception as exc:  # a thumbnail is a nicety: the faces are stored without it
            log.warning("thumbnails for %s failed: %r", job.url, exc)
            self.discovery["thumbnail_failed"] += 1
            return records
        return [dataclasses.replace(r, thumbnail=p) for r, p in zip(records, paths, strict=True)]
