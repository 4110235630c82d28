"""The fetch queue's producer side: discovered photos in, ``--limit`` counted.

Every source ends here: candidates get their state key (the normalised URL;
unusable ones are counted and dropped), those of another shard are left to it,
new ones become jobs in the state and go to the fetch queue. Photos left
pending or failed by earlier runs come back from the state the same way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from sozy.fetch import FetchError
from sozy.records import Candidate
from sozy.sources import SourceError

from .plan import CrawlPlan
from .state import Job, Status
from .stats import CrawlStats
from .tasks import StateThread
from .urlkey import normalize_url

log = logging.getLogger("sozy.crawl")

# Candidates written to the state per transaction while a source streams.
DISCOVERY_CHUNK = 256


class LimitReached(Exception):
    """--limit photos were handed to the fetch stage."""


class JobFeed:
    """Puts jobs on the fetch queue, counting them against the plan's ``limit``."""

    def __init__(
        self,
        queue: asyncio.Queue[Job | None],
        plan: CrawlPlan,
        *,
        db: StateThread,
        stats: CrawlStats,
        counts: Counter[str],
    ) -> None:
        self.queue = queue
        self.plan = plan
        self._db = db
        self.stats = stats
        self.counts = counts  # what discovery met that is not a photo outcome
        self.emitted = 0

    async def emit(self, jobs: Iterable[Job], *, resumed: bool = False) -> None:
        for job in jobs:
            self.check_limit()
            await self.queue.put(job)
            self.emitted += 1
            self.stats.mark("discovered")
            if resumed:
                self.stats.resumed += 1

    def check_limit(self) -> None:
        if self.plan.limit is not None and self.emitted >= self.plan.limit:
            raise LimitReached()

    async def from_state(self, status: Status) -> None:
        """Photos left ``status`` by earlier runs, oldest first (those discovered now come after)."""
        db = self._db
        upto = await db(db.state.max_seq)
        after = 0
        while True:
            self.check_limit()
            jobs = await db(db.state.jobs, status, after_seq=after, upto_seq=upto, limit=DISCOVERY_CHUNK)
            if not jobs:
                return
            after = jobs[-1].seq
            await self.emit(jobs, resumed=True)

    def keyed(self, candidates: Iterable[Candidate], *, shard_by_url: bool) -> list[tuple[str, Candidate]]:
        """(state key, candidate) for candidates with a usable URL (and, if asked, in our shard)."""
        keyed = []
        for cand in candidates:
            key = normalize_url(cand.image_url)
            if key is None:
                self.counts["bad_image_url"] += 1
                log.debug("not a photo URL, ignored: %r", cand.image_url)
                continue
            if shard_by_url and self.plan.shard is not None and not self.plan.shard.owns(key):
                self.counts["other_shard"] += 1
                continue
            keyed.append((key, cand if cand.image_url == key else dataclasses.replace(cand, image_url=key)))
        return keyed

    async def add(self, candidates: Sequence[Candidate]) -> None:
        """New candidates of our shard into the state, and their jobs onto the queue."""
        keyed = self.keyed(candidates, shard_by_url=True)
        if keyed:
            db = self._db
            await self.emit(await db(db.state.add_jobs, keyed))


def reason_of(exc: BaseException) -> str:
    """The reason a discovery unit failed, as recorded in the state."""
    if isinstance(exc, (FetchError, SourceError)):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "file_not_found"
    if isinstance(exc, OSError):
        return "os_error"
    return "error"
