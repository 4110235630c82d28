"""One node's share of a cluster crawl: fetch and embed batches of photos.

``NodeWorker`` is the body of one Ray actor per node. It starts the node's
face engine once (the process pool on CPU nodes, GPU workers where Ray gave
it GPUs) and one ``Fetcher`` whose per-host limits are the cluster's
(``slots.SharedHostLimiter``), then turns each batch of jobs into one
``PhotoResult`` per photo: the photo's sha256 and faces, or why it failed.
It decides nothing the driver decides (ownership of content, names,
outcomes in the state): that code runs once, on the driver.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sozy.config import EngineSettings, Settings
from sozy.faces import EngineClosed, FaceEngine, FaceEngineError, ImageError
from sozy.fetch import Fetcher, FetchError
from sozy.logs import setup_logging
from sozy.records import PhotoFaces, sha256_hex

from ..engine import NodeEngine
from ..pipeline import fetch_job
from ..state import Job
from ..thumbnails import crop_faces
from .robots import SharedRobotsAnswers
from .slots import SharedHostLimiter

log = logging.getLogger("sozy.crawl")

# Builds a node's engine from its settings and its Ray resources (``{"CPU": 4.0, "GPU": 1.0, ...}``);
# the default is ``FaceEngine``. Benchmarks give engines of known speed.
EngineFactory = Callable[[EngineSettings, Mapping[str, float]], NodeEngine]


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """What a node made of one photo: its faces, or the reason it has none."""

    url: str
    sha256: str | None = None
    faces: PhotoFaces | None = None
    fetched_bytes: int = 0
    # Set when the photo failed or is skipped: a fetch reason or an engine code.
    reason: str | None = None
    error: str = ""
    # JPEG crops of the faces, in order, when thumbnails are on.
    crops: tuple[bytes, ...] = ()
    # The engine was closing: no outcome, the photo stays pending.
    pending: bool = False


@dataclass(frozen=True, slots=True)
class BatchResult:
    photos: list[PhotoResult]
    # The node fetcher's counters for this batch (requests, retries, robots_txt, ...).
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    workers: int
    device: str
    model_id: str


def node_engine_settings(settings: EngineSettings, resources: Mapping[str, float]) -> EngineSettings:
    """The engine of one node: ``engine.workers``, or (0) one per CPU or GPU Ray counts on that node."""
    if settings.workers > 0:
        return settings
    gpus = int(resources.get("GPU", 0)) if settings.device != "cpu" else 0
    return dataclasses.replace(settings, workers=gpus or max(1, int(resources.get("CPU", 1))))


def face_engine(settings: EngineSettings, resources: Mapping[str, float]) -> FaceEngine:
    return FaceEngine(node_engine_settings(settings, resources))


class NodeWorker:
    """Fetches and embeds batches on one node (the body of a Ray actor; async methods share its loop)."""

    def __init__(
        self,
        settings: Settings,
        node: str,
        resources: Mapping[str, float],
        slots: Any,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        self.node = node
        self._resources = dict(resources)
        self._slots = slots
        self._engine_factory = engine_factory or face_engine
        self._engine: NodeEngine | None = None
        self._fetcher: Fetcher | None = None
        self._reported: Counter[str] = Counter()  # fetcher counters already sent to the driver

    async def start(self) -> NodeInfo:
        """Load the models (once for this node) and open the fetcher."""
        setup_logging(self.settings.log_level)
        engine = self._engine = self._engine_factory(self.settings.engine, self._resources)
        await engine.start()
        fetcher = Fetcher(
            self.settings.crawl,
            limiter=SharedHostLimiter(self._slots, self.node),
            robots_answers=SharedRobotsAnswers(self._slots),
        )
        await fetcher.open()
        self._fetcher = fetcher
        return NodeInfo(engine.workers, engine.device, engine.model_id)

    async def process(self, jobs: Sequence[Job], local_roots: Mapping[str, Path] | None = None) -> BatchResult:
        """Fetch and embed ``jobs`` at once (within the node's fetch and engine limits).

        ``local_roots``: the driver's crawled folders (``file:<folder>/...`` photos), which this
        node reads at the same paths (a shared mount, or the driver's own machine)."""
        fetcher, engine = self._fetcher, self._engine
        assert fetcher is not None and engine is not None, "start() first"
        fetcher.local_roots.update(local_roots or {})
        photos = await asyncio.gather(*(self._photo(fetcher, engine, job) for job in jobs))
        # Counted since the last batch returned (batches overlap: each sends what is new).
        now = Counter(fetcher.counters)
        delta = now - self._reported
        self._reported = now
        return BatchResult(list(photos), dict(delta))

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._engine is not None:
            await self._engine.close()

    async def _photo(self, fetcher: Fetcher, engine: NodeEngine, job: Job) -> PhotoResult:
        try:
            fetched = await fetch_job(fetcher, job)
        except FetchError as exc:
            return PhotoResult(job.url, reason=exc.reason, error=str(exc))
        except Exception as exc:
            log.exception("fetching %s failed unexpectedly", job.url)
            return PhotoResult(job.url, reason="error", error=repr(exc))
        body = fetched.body
        sha = await asyncio.to_thread(sha256_hex, body)
        try:
            found: PhotoFaces = await engine.embed(body)
        except EngineClosed:
            return PhotoResult(job.url, pending=True)
        except FaceEngineError as exc:
            return PhotoResult(
                job.url,
                sha256=sha if isinstance(exc, ImageError) else None,
                fetched_bytes=len(body),
                reason=exc.code,
                error=str(exc),
            )
        except Exception as exc:
            log.exception("embedding %s failed unexpectedly", job.url)
            return PhotoResult(job.url, fetched_bytes=len(body), reason="error", error=repr(exc))
        crops: tuple[bytes, ...] = ()
        if found.faces and self.settings.crawl.thumbnails:
            crops = await self._crops(job, body, found)
        return PhotoResult(job.url, sha256=sha, faces=found, fetched_bytes=len(body), crops=crops)

    async def _crops(self, job: Job, body: bytes, found: PhotoFaces) -> tuple[bytes, ...]:
        c = self.settings.crawl
        try:
            crops = await asyncio.to_thread(
                crop_faces, body, [f.box for f in found.faces], c.thumbnail_px, self.settings.engine.max_pixels
            )
        except Exception as exc:  # a thumbnail is a nicety: the faces are stored without it
            log.warning("thumbnails for %s failed: %r", job.url, exc)
            return ()
        return tuple(crops)
