"""The embedded face store: a Qdrant engine inside this process (qdrant-edge), in a directory.

No server to run: the store is ``<store_path>/<collection>/`` with a lock file beside it.
It is Qdrant's own storage engine (WAL, segments, HNSW, payload indexes, int8
quantization), so it searches a million faces in about a millisecond once indexed.

Three things shape this module:

- Every engine call holds the GIL. Calls run one at a time on a dedicated thread, so
  the event loop is only held for the call itself (a query: about a millisecond).
- The HNSW index is built only by ``optimize()``, which holds the GIL for as long as
  it runs (minutes at a million faces). It therefore runs in a child process while this
  process closes and then reopens the shard; the event loop keeps running meanwhile
  and store calls wait. Until a segment is indexed, searching it is an exact full
  scan, which is correct, just slower.
- One process per directory: a lock file makes a second process fail at once with a
  message that says what to do.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import qdrant_edge as qe

from sozy.config import StoreSettings
from sozy.records import VECTOR_SIZE, FaceHit, FaceRecord, PersonHit

from .base import (
    ID_PAGE,
    KEYWORD_FIELDS,
    ON_DISK_INDEX_FIELDS,
    PERSON_FIELD,
    StoredPoint,
    StoreError,
    StoreInUse,
    StoreMismatch,
    StoreStats,
    check_k,
    check_vector,
    group_people,
    identity_payload,
    is_point_id,
    record_points,
)
from .people import identities, take_down_person
from .selectors import Takedown, check_selector, delete_selector
from .takedowns import TakedownFile, TakedownList, refuse_taken_down, takedowns_for

log = logging.getLogger(__name__)

T = TypeVar("T")

# Qdrant's default: segments under this size stay unindexed (a full scan of them is fast).
DEFAULT_INDEXING_THRESHOLD_KB = 10_000
# Build the index after this many new faces, so the index is never far behind and a
# close never has much indexing to do.
DEFAULT_OPTIMIZE_EVERY = 200_000
# Segments the engine keeps before merging any. Each index build then indexes only the
# faces added since the last one: merging would rebuild one HNSW over the merged
# segments, and that build's memory grows with them (figures in docs/store.md). A search
# visits every segment (on store.search_threads threads).
SEGMENTS_BEFORE_MERGE = 8
# Points per engine update call.
_UPDATE_CHUNK = 4096
# Nearest faces fetched in the first round of a people search.
_PEOPLE_FIRST_LIMIT = 64


def _vector_bytes() -> int:
    return VECTOR_SIZE * 4


class StoreLock:
    """An exclusive ``fcntl`` lock on a file, held while the store is open.

    The kernel drops it when the process dies, so a crashed crawler never leaves a
    stale lock behind. The file records who holds it, for the error message.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: Path) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "unknown process"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StoreInUse(in_use_message(what, holder)) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {' '.join(sys.argv)[:400]}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def in_use_message(what: Path, holder: str) -> str:
    return (
        f"the face store {what} is in use by another process ({holder}). "
        "The embedded store serves one process at a time: stop that process first, or, to crawl and "
        "serve at once, run a Qdrant server and set store.url (SOZY_STORE_URL); "
        "`python -m sozy.store copy` moves the faces there."
    )


def edge_config(settings: StoreSettings, indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB) -> qe.EdgeConfig:
    """128-d Euclid vectors, HNSW from the settings, int8 quantization kept in RAM.

    Quantized vectors make the HNSW build about 2.5 times faster and queries faster;
    results are rescored with the original vectors, so distances stay exact. Those
    originals stay on disk (memory-mapped): a search reads only its candidates'.
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


def optimize_directory(path: str) -> bool:
    """Build the index of the store at ``path`` (run in a child process, see ``EmbeddedStore.optimize``)."""
    shard = qe.EdgeShard.load(path)
    try:
        built = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return built


def _field_filter(selector: dict[str, str]) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition(field, match=qe.MatchValue(value)) for field, value in selector.items()])


def _nearest_filter(
    exclude_people: Collection[str], exclude_ids: Collection[str], only_person: str | None, unnamed: bool
) -> qe.Filter | None:
    must: list[Any] = []
    must_not: list[Any] = []
    if only_person is not None:
        must.append(qe.FieldCondition(PERSON_FIELD, match=qe.MatchValue(only_person)))
    elif not unnamed:
        must_not.append(qe.IsEmptyCondition(PERSON_FIELD))
    if exclude_people:
        must_not.append(qe.FieldCondition(PERSON_FIELD, match=qe.MatchAny(list(exclude_people))))
    if exclude_ids:
        must_not.append(qe.HasIdCondition(set(exclude_ids)))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _identity_filter(person_id: str | None, named: bool | None) -> qe.Filter | None:
    if person_id is not None:
        return qe.Filter(must=[qe.FieldCondition(PERSON_FIELD, match=qe.MatchValue(person_id))])
    if named is None:
        return None
    empty = qe.IsEmptyCondition(PERSON_FIELD)
    return qe.Filter(must_not=[empty]) if named else qe.Filter(must=[empty])


def _hit(point: Any) -> FaceHit:
    vector = None if point.vector is None else np.asarray(point.vector, dtype=np.float32)
    return FaceHit(id=str(point.id), distance=float(point.score), payload=dict(point.payload or {}), vector=vector)


def _stored(record: Any) -> StoredPoint:
    vector = np.asarray(record.vector if record.vector is not None else np.zeros(VECTOR_SIZE), dtype=np.float32)
    return StoredPoint(str(record.id), vector, dict(record.payload or {}))


class EmbeddedStore:
    """The embedded backend. Open with ``await EmbeddedStore.open(root, settings)``."""

    backend = "embedded"

    def __init__(
        self,
        shard: qe.EdgeShard,
        shard_dir: Path,
        lock: StoreLock,
        executor: ThreadPoolExecutor,
        settings: StoreSettings,
        *,
        indexing_threshold_kb: int,
        optimize_every: int,
        takedown_file: TakedownFile,
        takedowns: TakedownList,
    ) -> None:
        self._shard: qe.EdgeShard | None = shard
        self.path = shard_dir
        self.collection = settings.collection
        self._lock = lock
        self._executor = executor
        self._settings = settings
        self._gate = asyncio.Lock()
        # Fewer unindexed faces than this are not worth an index (the engine would not build one).
        self._min_unindexed = max(1, indexing_threshold_kb * 1024 // _vector_bytes())
        self._optimize_every = optimize_every
        self._since_optimize = 0
        # Peak memory of the last index build's child process, in bytes (0: none yet).
        self.last_index_peak_bytes = 0
        # One process per directory, so the file is read once and written on change.
        self._takedown_file = takedown_file
        self._takedowns = takedowns

    @classmethod
    async def open(
        cls,
        root: Path,
        settings: StoreSettings,
        *,
        create: bool = True,
        optimize_on_open: bool = True,
        optimize_every: int = DEFAULT_OPTIMIZE_EVERY,
        indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB,
    ) -> EmbeddedStore:
        """Open (or, unless ``create=False``, create) the store ``root/<collection>``.

        ``optimize_on_open`` builds the index first when many faces are unindexed (a crawl
        that was killed), so searches are fast from the first one. ``optimize_every``
        (0 = never) builds it after that many new faces.
        """
        root = Path(root)
        shard_dir = root / settings.collection
        if not create and not (shard_dir / "edge_config.json").is_file():
            raise StoreError(f"there is no face store at {shard_dir}")
        root.mkdir(parents=True, exist_ok=True)
        lock = StoreLock(root / f"{settings.collection}.lock")
        lock.acquire(shard_dir)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sozy-store")
        try:
            takedown_file = TakedownFile(root / f"{settings.collection}.takedowns.json")
            takedowns = takedown_file.load(settings.takedown_distance)
            exists = check_existing(shard_dir)
            config = edge_config(settings, indexing_threshold_kb)
            loop = asyncio.get_running_loop()
            shard = await loop.run_in_executor(executor, _open_shard, shard_dir, config, exists)
            await loop.run_in_executor(executor, _ensure_indexes, shard)
        except BaseException:
            executor.shutdown(wait=False)
            lock.release()
            raise
        store = cls(
            shard,
            shard_dir,
            lock,
            executor,
            settings,
            indexing_threshold_kb=indexing_threshold_kb,
            optimize_every=optimize_every,
            takedown_file=takedown_file,
            takedowns=takedowns,
        )
        store._since_optimize = await store._unindexed()
        if optimize_on_open and store._since_optimize >= store._min_unindexed:
            log.info("building the search index for %d new faces in %s", store._since_optimize, shard_dir)
            await store.optimize()
        return store

    # -- plumbing -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run an engine call on the store's thread (one at a time; the GIL is held inside)."""
        if self._shard is None:
            raise StoreError(f"the store {self.path} is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args))
        except (StoreError, ValueError):
            raise
        except Exception as exc:  # the engine raises plain Exception with a message
            raise StoreError(f"embedded store {self.path}: {exc}") from exc

    def _engine(self) -> qe.EdgeShard:
        if self._shard is None:
            raise StoreError(f"the store {self.path} is closed")
        return self._shard

    async def _unindexed(self) -> int:
        info = await self._call(lambda: self._engine().info())
        return max(0, info.points_count - info.indexed_vectors_count)

    def _search_params(self, limit: int) -> qe.SearchParams:
        return qe.SearchParams(
            hnsw_ef=max(self._settings.search_ef, limit),
            quantization=qe.QuantizationSearchParams(rescore=True),
        )

    # -- writes -------------------------------------------------------------------------

    async def upsert(self, records: Sequence[FaceRecord]) -> list[str]:
        """Insert or replace faces (ids from ``FaceRecord.id``: re-upserting changes nothing).

        Returns the ids of faces refused because a takedown matches them."""
        return await self.upsert_points(record_points(records))

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        for point in points:
            check_vector(point.vector)
        # Payloads written before identities get theirs (a copy from an old store).
        points = [StoredPoint(p.id, p.vector, identity_payload(dict(p.payload))) for p in points]
        points, refused = refuse_taken_down(points, self._takedowns)
        if not points:
            return refused

        def write() -> None:
            shard = self._engine()
            for start in range(0, len(points), _UPDATE_CHUNK):
                chunk = points[start : start + _UPDATE_CHUNK]
                edge_points = [qe.Point(p.id, p.vector.tolist(), p.payload) for p in chunk]
                shard.update(qe.UpdateOperation.upsert_points(edge_points))

        async with self._gate:
            await self._call(write)
        self._since_optimize += len(points)
        if self._optimize_every and self._since_optimize >= self._optimize_every:
            await self.optimize()
        return refused

    async def delete(
        self,
        *,
        image_url: str | None = None,
        page_url: str | None = None,
        name: str | None = None,
        source: str | None = None,
        person_id: str | None = None,
        block: bool = True,
    ) -> list[str]:
        """Delete the faces matching every given field; returns their ids. ``block``: record the takedown.

        By ``name`` or ``person_id``: the person (``sozy.store.people``)."""
        selector = delete_selector(image_url, page_url, name, source, person_id)
        if name is not None or person_id is not None:
            people = await identities(self, name=name, person_id=person_id)
            where = {k: v for k, v in selector.items() if k not in ("name", PERSON_FIELD)}
            distance = self._settings.takedown_distance
            return await take_down_person(self, people, where, distance, block=block) if people else []
        flt = _field_filter(selector)
        # The photos' sha256 is needed only to block the same bytes elsewhere.
        payload = qe.PayloadSelector.Include(["image_sha256"]) if block and image_url is not None else False

        def remove() -> list[str]:
            shard = self._engine()
            ids: list[str] = []
            photos: set[str] = set()
            offset = None
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=ID_PAGE, filter=flt, with_payload=payload, with_vector=False
                )
                records, offset = shard.scroll(request)
                ids.extend(str(r.id) for r in records)
                photos.update(str((r.payload or {}).get("image_sha256") or "") for r in records)
                if offset is None:
                    break
            if block:
                # Recorded before the delete: a crash in between leaves faces that can no
                # longer be re-added, and running the takedown again removes them.
                self._record_takedowns(takedowns_for(selector, photos))
            if ids:
                # By id, not by filter: what is deleted is exactly what is returned.
                shard.update(qe.UpdateOperation.delete_points(list(ids)))
                # A takedown must survive a crash right after it returns.
                shard.flush()
            return ids

        async with self._gate:
            return await self._call(remove)

    async def delete_ids(self, ids: Sequence[str]) -> None:
        if not ids:
            return

        def remove() -> None:
            shard = self._engine()
            shard.update(qe.UpdateOperation.delete_points(list(ids)))
            shard.flush()  # a takedown must survive a crash right after it returns

        async with self._gate:
            await self._call(remove)

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        if not updates:
            return

        def write() -> None:
            shard = self._engine()
            for point_id, fields in updates.items():
                shard.update(qe.UpdateOperation.set_payload([point_id], dict(fields)))

        async with self._gate:
            await self._call(write)

    def _record_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        added = sum(self._takedowns.add(t) for t in takedowns)
        if added:
            self._save_takedowns()
        return added

    def _save_takedowns(self) -> None:
        try:
            self._takedown_file.save(self._takedowns)
        except BaseException:
            self._takedowns = self._takedown_file.load(
                self._settings.takedown_distance
            )  # memory must not run ahead of the file
            raise

    async def taken_down(self, payload: Mapping[str, Any]) -> bool:
        return self._takedowns.blocks(payload)

    async def takedowns(self) -> list[Takedown]:
        return list(self._takedowns)

    async def add_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        async with self._gate:
            return await self._call(self._record_takedowns, list(takedowns))

    async def lift(self, selector: Mapping[str, str]) -> bool:
        selector = check_selector(selector)

        def lift() -> bool:
            if self._takedowns.remove(selector) is None:
                return False
            self._save_takedowns()
            return True

        async with self._gate:
            return await self._call(lift)

    async def optimize(self) -> bool:
        """Build the HNSW index for faces not yet indexed; True when something was built.

        Runs in a child process (the engine holds the GIL while it indexes): this process
        closes the shard, the child loads, optimizes and closes it, and the shard is
        reopened. Store calls wait meanwhile; the event loop does not.
        """
        async with self._gate:
            started = time.perf_counter()
            await self._call(self._close_shard)
            try:
                built, self.last_index_peak_bytes = await _run_optimize_child(self.path)
            finally:
                loop = asyncio.get_running_loop()
                self._shard = await loop.run_in_executor(self._executor, qe.EdgeShard.load, str(self.path))
            self._since_optimize = 0
            log.info(
                "search index of %s built in %.1f s (peak memory of the build %.2f GB)",
                self.path,
                time.perf_counter() - started,
                self.last_index_peak_bytes / 1024**3,
            )
            return built

    @property
    def index_threshold(self) -> int:
        """Unindexed faces below this many are searched exactly: the engine builds no index for them."""
        return self._min_unindexed

    def _close_shard(self) -> None:
        shard = self._engine()
        shard.flush()
        shard.close()
        self._shard = None

    async def close(self, *, optimize: bool = True) -> None:
        """Build the index for what was added (unless ``optimize=False``), flush, release the lock."""
        if self._shard is None:
            return
        try:
            if optimize and await self._unindexed() >= self._min_unindexed:
                await self.optimize()
            async with self._gate:
                await self._call(self._close_shard)
        finally:
            self._shard = None
            self._executor.shutdown(wait=True)
            self._lock.release()

    # -- reads --------------------------------------------------------------------------

    async def _nearest(
        self,
        vector: np.ndarray,
        limit: int,
        flt: qe.Filter | None = None,
        *,
        with_vector: bool = False,
    ) -> list[FaceHit]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist()),
            filter=flt,
            with_payload=True,
            with_vector=with_vector,
            params=self._search_params(limit),
        )
        async with self._gate:
            points = await self._call(lambda: self._engine().query(request))
        return [_hit(p) for p in points]

    async def search(self, vector: np.ndarray, k: int = 10) -> list[FaceHit]:
        """The ``k`` nearest faces, by ascending L2 distance."""
        return await self._nearest(check_vector(vector), check_k(k))

    async def search_people(
        self, vector: np.ndarray, k: int = 5, per_person: int = 1, *, unnamed: bool = False
    ) -> list[PersonHit]:
        """The ``k`` nearest distinct people with up to ``per_person`` faces each (grouping emulated:
        qdrant-edge has no group-by); faces of nobody known only with ``unnamed``."""
        query = check_vector(vector)

        async def nearest(limit: int, people: Collection[str], ids: Collection[str], only: str | None) -> list[FaceHit]:
            return await self._nearest(query, limit, _nearest_filter(people, ids, only, unnamed))

        first = max(_PEOPLE_FIRST_LIMIT, 4 * check_k(k) * check_k(per_person, "per_person"))
        return await group_people(nearest, k, per_person, first)

    async def neighbours(
        self,
        vector: np.ndarray,
        k: int,
        *,
        person_id: str | None = None,
        named: bool | None = None,
        with_vectors: bool = False,
    ) -> list[FaceHit]:
        flt = _identity_filter(person_id, named)
        return await self._nearest(check_vector(vector), check_k(k), flt, with_vector=with_vectors)

    async def faces_where(
        self, match: Mapping[str, Collection[str]], *, with_vectors: bool = False
    ) -> list[StoredPoint]:
        flt = qe.Filter(must=[qe.FieldCondition(f, match=qe.MatchAny(list(v))) for f, v in match.items()])

        def read() -> list[StoredPoint]:
            found: list[StoredPoint] = []
            offset = None
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=ID_PAGE, filter=flt, with_payload=True, with_vector=with_vectors
                )
                records, offset = self._engine().scroll(request)
                found.extend(_stored(r) for r in records)
                if offset is None:
                    return found

        async with self._gate:
            return await self._call(read)

    async def person_ids_named(self, name: str) -> set[str]:
        request = qe.FacetRequest(key=PERSON_FIELD, limit=ID_PAGE, exact=True, filter=_field_filter({"name": name}))
        async with self._gate:
            hits = await self._call(lambda: self._engine().facet(request).hits)
        return {str(h.value) for h in hits if h.count > 0}

    async def get(self, point_id: str) -> FaceRecord | None:
        """The face with this id, or None."""
        if not is_point_id(point_id):
            return None
        async with self._gate:
            records = await self._call(lambda: self._engine().retrieve([str(point_id)], True, True))
        if not records:
            return None
        point = _stored(records[0])
        return FaceRecord.from_payload(point.payload, point.vector)

    async def count(self) -> int:
        async with self._gate:
            return await self._call(lambda: self._engine().count(qe.CountRequest(exact=True)))

    async def stats(self) -> StoreStats:
        def gather() -> StoreStats:
            shard = self._engine()
            faces = shard.count(qe.CountRequest(exact=True))
            limit = max(faces, 1)  # distinct values can't outnumber faces: an exact, bounded facet
            # Exact facets may list a value whose faces were all deleted, with count 0.
            people = sum(
                1 for h in shard.facet(qe.FacetRequest(key=PERSON_FIELD, limit=limit, exact=True)).hits if h.count > 0
            )
            models = sorted(
                str(h.value)
                for h in shard.facet(qe.FacetRequest(key="model", limit=limit, exact=True)).hits
                if h.count > 0
            )
            info = shard.info()
            old = qe.Filter(must=[qe.IsEmptyCondition(PERSON_FIELD)], must_not=[qe.IsEmptyCondition("name")])
            without_identity = shard.count(qe.CountRequest(exact=True, filter=old))
            return StoreStats(
                faces=faces,
                people=people,
                models=models,
                backend=self.backend,
                collection=self.collection,
                indexed=info.indexed_vectors_count,
                without_identity=without_identity,
            )

        async with self._gate:
            return await self._call(gather)

    async def scroll_points(self, offset: str | None, limit: int) -> tuple[list[StoredPoint], str | None]:
        """A page of points in id order and the next page's offset (None at the end)."""
        request = qe.ScrollRequest(offset=offset, limit=check_k(limit, "limit"), with_payload=True, with_vector=True)
        async with self._gate:
            records, next_offset = await self._call(lambda: self._engine().scroll(request))
        return [_stored(r) for r in records], (None if next_offset is None else str(next_offset))


def _open_shard(shard_dir: Path, config: qe.EdgeConfig, exists: bool) -> qe.EdgeShard:
    try:
        if exists:
            return qe.EdgeShard.load(str(shard_dir), config)
        return qe.EdgeShard.create(str(shard_dir), config)
    except Exception as exc:
        message = str(exc)
        if "WouldBlock" in message:
            raise StoreInUse(in_use_message(shard_dir, "the engine's write-ahead log is locked")) from None
        if "incompatible" in message.lower():
            raise StoreMismatch(f"the store at {shard_dir} does not fit Sozy's settings: {message}") from None
        raise StoreError(f"cannot open the store at {shard_dir}: {message}") from None


def _ensure_indexes(shard: qe.EdgeShard) -> None:
    existing = set(shard.info().payload_schema)
    for field in KEYWORD_FIELDS:
        if field not in existing:
            schema = (
                qe.KeywordIndexParams(memory=qe.Memory.Cold)
                if field in ON_DISK_INDEX_FIELDS
                else qe.PayloadSchemaType.Keyword
            )
            shard.update(qe.UpdateOperation.create_field_index(field, schema))


# The child reports its own peak RSS (VmHWM): ru_maxrss would include the parent's,
# which Linux carries across the fork and exec that start it.
_CHILD_CODE = (
    "import json, sys\n"
    "from sozy.store.edge import optimize_directory, peak_rss_bytes\n"
    "built = optimize_directory(sys.argv[1])\n"
    "print(json.dumps({'built': built, 'peak_rss': peak_rss_bytes()}))\n"
)


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM), in bytes; 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def _run_optimize_child(shard_dir: Path) -> tuple[bool, int]:
    """Optimize ``shard_dir`` in a child Python process; the caller has closed its shard.

    Returns whether anything was built and the child's peak memory in bytes."""
    env = dict(os.environ)
    # The child must import this very package, wherever it was imported from.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH", "")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD_CODE,
        str(shard_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await proc.communicate()
    except BaseException:
        # Cancelled: stop the child. The engine swaps optimized segments in atomically,
        # so an interrupted build leaves the old, searchable segments.
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise StoreError(f"building the search index of {shard_dir} failed: {' | '.join(tail) or proc.returncode}")
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
        return bool(report["built"]), int(report.get("peak_rss", 0))
    except (ValueError, IndexError, KeyError, TypeError):
        return True, 0
