"""The store stage's writes: labels checked against the people's own faces, then upserts.

A batch is checked by consensus (``sozy.store.consensus``: a label that does not
match the person's majority is dropped, a clear match attaches an unnamed face),
the stored faces whose labels changed are updated first, then the new faces are
upserted in store-sized chunks. A failing write is retried a few times with
backoff; if it still fails, its photos are recorded as failed (not lost: a
later ``--retry-failed`` stores them).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sozy.backoff import backoff_seconds
from sozy.config import Settings
from sozy.records import FaceRecord
from sozy.store import FaceStore
from sozy.store.consensus import Consensus, ConsensusRule

from .stats import CrawlStats

log = logging.getLogger("sozy.crawl")

# Attempts at one store write before its photos are recorded as failed, and the waits between.
STORE_ATTEMPTS = 3
STORE_BACKOFF_BASE_S = 0.5
STORE_BACKOFF_MAX_S = 5.0


@dataclass
class Written:
    """How a write ended: ``error`` (its text) if it failed, else the ids the store refused
    (a takedown matches them) and the records as written (labels decided), by id."""

    error: str | None = None
    refused: set[str] = field(default_factory=set)
    records: dict[str, FaceRecord] = field(default_factory=dict)


class StoreWriter:
    """Writes batches of faces to the store, checking their labels on the way."""

    def __init__(self, settings: Settings, store: FaceStore, stats: CrawlStats) -> None:
        self.store = store
        self.stats = stats
        self._chunk = settings.store.upsert_batch
        # Labels checked against the people's own faces as they are stored (sozy.store.consensus).
        rule = ConsensusRule.from_settings(settings.identity)
        self._consensus = Consensus(store, rule) if settings.identity.consensus else None

    async def write(self, records: list[FaceRecord]) -> Written:
        if not records:
            return Written()
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                return await self._write(records)
            except Exception as exc:
                if attempt == STORE_ATTEMPTS:
                    log.error("store write of %d faces failed %d times: %r", len(records), attempt, exc)
                    return Written(error=f"{type(exc).__name__}: {exc}")
                log.warning("store write failed (%r), retrying", exc)
                await asyncio.sleep(backoff_seconds(attempt, STORE_BACKOFF_BASE_S, STORE_BACKOFF_MAX_S))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(self, records: list[FaceRecord]) -> Written:
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
        for start in range(0, len(written), self._chunk):
            refused.update(await self.store.upsert(written[start : start + self._chunk]))
        return Written(refused=refused, records={r.id: r for r in written})
