"""The embedded engine's shard: its configuration, opening it, and calling it from asyncio.

Every engine call holds the GIL, so calls run one at a time on a dedicated thread
(``ShardThread``) and the event loop is held only for the call itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import qdrant_edge as qe

from sozy.config import StoreSettings
from sozy.records import VECTOR_SIZE

from .base import KEYWORD_FIELDS, ON_DISK_INDEX_FIELDS, StoreError, StoreInUse, StoreMismatch
from .edge_lock import in_use_message

T = TypeVar("T")

# Qdrant's default: segments under this size stay unindexed (a full scan of them is fast).
DEFAULT_INDEXING_THRESHOLD_KB = 10_000
# Segments the engine keeps before merging any. Each index build then indexes only the
# faces added since the last one: merging would rebuild one HNSW over the merged
# segments, and that build's memory grows with them (figures in docs/store.md). A search
# visits every segment (on store.search_threads threads).
SEGMENTS_BEFORE_MERGE = 8


def edge_config(settings: StoreSettings, indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB) -> qe.EdgeConfig:
    """128-d Euclid vectors, HNSW from the settings, int8 quantization kept in RAM.

    Quantized vectors make the HNSW build and queries faster (docs/store.md); results are
    rescored with the original vectors, so distances stay exact. Those originals stay on
    disk (memory-mapped): a search reads only its candidates'.
    """
    return qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=VECTOR_SIZE, distance=qe.Distance.Euclid, on_disk=True),
        hnsw_config=qe.HnswIndexConfig(
            m=settings.hnsw_m,
            ef_construct=settings.hnsw_ef_construct,
            full_scan_threshold=indexing_threshold_kb,
        ),
        quantization_config=qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned),
        optimizers=qe.EdgeOptimizersConfig(
            indexing_threshold=indexing_threshold_kb, default_segment_number=SEGMENTS_BEFORE_MERGE
        ),
        max_search_threads=settings.search_threads if settings.search_threads > 0 else None,  # None: one per core
    )


def check_existing(shard_dir: Path) -> bool:
    """True when ``shard_dir`` holds a store; StoreMismatch when it holds other vectors."""
    config_file = shard_dir / "edge_config.json"
    if not config_file.is_file():
        if (shard_dir / "segments").exists():
            raise StoreError(f"{shard_dir} has segments but no edge_config.json: it is not a Sozy store")
        return False
    try:
        stored = json.loads(config_file.read_text(encoding="utf-8"))
        vectors = stored.get("vectors") or {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read {config_file}: {exc}") from None
    params = vectors.get("")
    if params is None:
        raise StoreMismatch(
            f"the store at {shard_dir} holds named vectors {sorted(vectors)}, not Sozy's single face vector; "
            "point store.path or store.collection elsewhere"
        )
    size, distance = params.get("size"), params.get("distance")
    if size != VECTOR_SIZE or distance != "Euclid":
        raise StoreMismatch(
            f"the store at {shard_dir} holds {size}-d {distance} vectors; Sozy stores {VECTOR_SIZE}-d Euclid "
            "(dlib face descriptors). Point store.path or store.collection elsewhere, or move that directory away"
        )
    return True


def open_shard(shard_dir: Path, config: qe.EdgeConfig, exists: bool) -> qe.EdgeShard:
    """Load the shard (or create it), its payload indexes ensured."""
    try:
        shard = qe.EdgeShard.load(str(shard_dir), config) if exists else qe.EdgeShard.create(str(shard_dir), config)
    except Exception as exc:
        message = str(exc)
        if "WouldBlock" in message:
            raise StoreInUse(in_use_message(shard_dir, "the engine's write-ahead log is locked")) from None
        if "incompatible" in message.lower():
            raise StoreMismatch(f"the store at {shard_dir} does not fit Sozy's settings: {message}") from None
        raise StoreError(f"cannot open the store at {shard_dir}: {message}") from None
    ensure_indexes(shard)
    return shard


def ensure_indexes(shard: qe.EdgeShard) -> None:
    existing = set(shard.info().payload_schema)
    for field in KEYWORD_FIELDS:
        if field not in existing:
            schema = (
                qe.KeywordIndexParams(memory=qe.Memory.Cold)
                if field in ON_DISK_INDEX_FIELDS
                else qe.PayloadSchemaType.Keyword
            )
            shard.update(qe.UpdateOperation.create_field_index(field, schema))


def _flush_and_close(shard: qe.EdgeShard) -> None:
    shard.flush()
    shard.close()


class ShardThread:
    """A shard called from asyncio: every call on one dedicated thread, one at a time."""

    def __init__(self, shard_dir: Path) -> None:
        self.path = shard_dir
        self._shard: qe.EdgeShard | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sozy-store")
        self._gate = asyncio.Lock()

    async def open(self, config: qe.EdgeConfig, exists: bool) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._shard = await loop.run_in_executor(self._executor, open_shard, self.path, config, exists)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    @property
    def is_open(self) -> bool:
        return self._shard is not None

    async def run(self, call: Callable[[qe.EdgeShard], T]) -> T:
        """``call(shard)`` on the shard's thread, after the calls before it."""
        async with self._gate:
            return await self._run(call)

    async def _run(self, call: Callable[[qe.EdgeShard], T]) -> T:
        shard = self._shard
        if shard is None:
            raise StoreError(f"the store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call, shard)
        except (StoreError, ValueError):
            raise
        except Exception as exc:  # the engine raises plain Exception with a message
            raise StoreError(f"embedded store {self.path}: {exc}") from exc

    async def closed_while(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` with the shard flushed and closed, other calls waiting; then reload it."""
        async with self._gate:
            await self._run(_flush_and_close)
            self._shard = None
            try:
                return await work()
            finally:
                loop = asyncio.get_running_loop()
                self._shard = await loop.run_in_executor(self._executor, qe.EdgeShard.load, str(self.path))

    async def close(self) -> None:
        """Flush and close the shard, and stop its thread."""
        try:
            if self._shard is not None:
                async with self._gate:
                    await self._run(_flush_and_close)
        finally:
            self._shard = None
            self._executor.shutdown(wait=True)
