"""The embedded face store: a Qdrant engine inside this process (qdrant-edge), in a directory.

No server to run: the store is ``<store_path>/<collection>/`` with a lock file beside it.
It is Qdrant's own storage engine (WAL, segments, HNSW, payload indexes, int8
quantization), so it searches a million faces fast once indexed (figures in docs/store.md).

Three things shape this backend:

- Every engine call holds the GIL. Calls run one at a time on a dedicated thread
  (``edge_shard.ShardThread``), so the event loop is only held for the call itself.
- The HNSW index is built only by ``optimize()``, which holds the GIL for as long as
  it runs (minutes at a million faces). It therefore runs in a child process
  (``edge_index``) while this process closes and then reopens the shard; the event loop
  keeps running meanwhile and store calls wait. Until a segment is indexed, searching it
  is an exact full scan, which is correct, just slower.
- One process per directory: a lock file (``edge_lock``) makes a second process fail at
  once with a message that says what to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from sozy.config import StoreSettings
from sozy.records import VECTOR_SIZE, FaceHit, FaceRecord, PersonHit

from .backend import SharedStore
from .base import (
    ID_PAGE,
    PERSON_FIELD,
    StoredPoint,
    StoreError,
    StoreStats,
    check_k,
    check_vector,
    hit_of,
    is_point_id,
    stored_of,
)
from .edge_index import run_optimize_child
from .edge_lock import StoreLock
from .edge_shard import DEFAULT_INDEXING_THRESHOLD_KB, ShardThread, check_existing, edge_config
from .grouping import group_people
from .takedowns import FileTakedowns, TakedownFile

log = logging.getLogger(__name__)

# Build the index after this many new faces, so the index is never far behind and a
# close never has much indexing to do.
DEFAULT_OPTIMIZE_EVERY = 200_000
# Points per engine update call.
_UPDATE_CHUNK = 4096
# Nearest faces fetched in the first round of a people search.
_PEOPLE_FIRST_LIMIT = 64


def _field_filter(match: Mapping[str, Collection[str]]) -> qe.Filter:
    """Faces whose payload field has one of the given values, for every field given."""
    return qe.Filter(must=[qe.FieldCondition(f, match=qe.MatchAny(list(v))) for f, v in match.items()])


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


def _pages(shard: qe.EdgeShard, flt: qe.Filter, payload: Any, vectors: bool) -> Iterator[list[Any]]:
    """Every record matching ``flt``, page by page (run on the shard's thread)."""
    offset = None
    while True:
        request = qe.ScrollRequest(offset=offset, limit=ID_PAGE, filter=flt, with_payload=payload, with_vector=vectors)
        records, offset = shard.scroll(request)
        yield records
        if offset is None:
            return


class EmbeddedStore(SharedStore):
    """The embedded backend. Open with ``await EmbeddedStore.open(root, settings)``."""

    backend = "embedded"

    def __init__(
        self,
        shard: ShardThread,
        lock: StoreLock,
        settings: StoreSettings,
        registry: FileTakedowns,
        *,
        indexing_threshold_kb: int,
        optimize_every: int,
    ) -> None:
        self._shard = shard
        self.path = shard.path
        self.collection = settings.collection
        self._lock = lock
        self._settings = settings
        # One process per directory, so the takedown file is read once and written on change.
        self.registry = registry
        # Fewer unindexed faces than this are not worth an index (the engine would not build one).
        self._min_unindexed = max(1, indexing_threshold_kb * 1024 // (VECTOR_SIZE * 4))
        self._optimize_every = optimize_every
        self._since_optimize = 0
        # Peak memory of the last index build's child process, in bytes (0: none yet).
        self.last_index_peak_bytes = 0

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
        try:
            registry = FileTakedowns(
                TakedownFile(root / f"{settings.collection}.takedowns.json"), settings.takedown_distance
            )
            exists = check_existing(shard_dir)
            shard = ShardThread(shard_dir)
            await shard.open(edge_config(settings, indexing_threshold_kb), exists)
        except BaseException:
            lock.release()
            raise
        store = cls(
            shard,
            lock,
            settings,
            registry,
            indexing_threshold_kb=indexing_threshold_kb,
            optimize_every=optimize_every,
        )
        store._since_optimize = await store._unindexed()
        if optimize_on_open and store._since_optimize >= store._min_unindexed:
            log.info("building the search index for %d new faces in %s", store._since_optimize, shard_dir)
            await store.optimize()
        return store

    async def _unindexed(self) -> int:
        info = await self._shard.run(lambda shard: shard.info())
        return max(0, info.points_count - info.indexed_vectors_count)

    # -- writes -------------------------------------------------------------------------

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        points, refused = await self.admit(points)
        if not points:
            return refused

        def write(shard: qe.EdgeShard) -> None:
            for start in range(0, len(points), _UPDATE_CHUNK):
                chunk = points[start : start + _UPDATE_CHUNK]
                edge_points = [qe.Point(p.id, p.vector.tolist(), p.payload) for p in chunk]
                shard.update(qe.UpdateOperation.upsert_points(edge_points))

        await self._shard.run(write)
        self._since_optimize += len(points)
        if self._optimize_every and self._since_optimize >= self._optimize_every:
            await self.optimize()
        return refused

    async def ids_where(self, selector: Mapping[str, str], *, photos: bool) -> tuple[list[str], set[str]]:
        flt = _field_filter({field: [value] for field, value in selector.items()})
        payload = qe.PayloadSelector.Include(["image_sha256"]) if photos else False

        def read(shard: qe.EdgeShard) -> tuple[list[str], set[str]]:
            ids: list[str] = []
            sha256s: set[str] = set()
            for records in _pages(shard, flt, payload, False):
                ids.extend(str(r.id) for r in records)
                sha256s.update(str((r.payload or {}).get("image_sha256") or "") for r in records)
            return ids, sha256s

        return await self._shard.run(read)

    async def delete_ids(self, ids: Sequence[str]) -> None:
        if not ids:
            return

        def remove(shard: qe.EdgeShard) -> None:
            # By id, not by filter: what is deleted is exactly what was listed.
            shard.update(qe.UpdateOperation.delete_points(list(ids)))
            shard.flush()  # a takedown must survive a crash right after it returns

        await self._shard.run(remove)

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        if not updates:
            return

        def write(shard: qe.EdgeShard) -> None:
            for point_id, fields in updates.items():
                shard.update(qe.UpdateOperation.set_payload([point_id], dict(fields)))

        await self._shard.run(write)

    async def optimize(self) -> bool:
        """Build the HNSW index for faces not yet indexed; True when something was built.

        Runs in a child process (the engine holds the GIL while it indexes): this process
        closes the shard, the child loads, optimizes and closes it, and the shard is
        reopened. Store calls wait meanwhile; the event loop does not.
        """
        started = time.perf_counter()
        built, self.last_index_peak_bytes = await self._shard.closed_while(lambda: run_optimize_child(self.path))
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

    async def close(self, *, optimize: bool = True) -> None:
        """Build the index for what was added (unless ``optimize=False``), flush, release the lock."""
        if not self._shard.is_open:
            return
        try:
            if optimize and await self._unindexed() >= self._min_unindexed:
                await self.optimize()
        finally:
            try:
                await self._shard.close()
            finally:
                self._lock.release()

    # -- reads --------------------------------------------------------------------------

    async def _nearest(
        self,
        vector: np.ndarray,
        limit: int,
        flt: qe.Filter | None = None,
        *,
        with_vector: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[FaceHit]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector.tolist()),
            filter=flt,
            with_payload=True if fields is None else qe.PayloadSelector.Include(list(fields)),
            with_vector=with_vector,
            params=qe.SearchParams(
                hnsw_ef=max(self._settings.search_ef, limit),
                quantization=qe.QuantizationSearchParams(rescore=True),
            ),
        )
        points = await self._shard.run(lambda shard: shard.query(request))
        return [hit_of(p) for p in points]

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
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[FaceHit]:
        flt = None if person_id is None else _field_filter({PERSON_FIELD: [person_id]})
        return await self._nearest(check_vector(vector), check_k(k), flt, with_vector=with_vectors, fields=fields)

    async def faces_where(
        self, match: Mapping[str, Collection[str]], *, with_vectors: bool = False
    ) -> list[StoredPoint]:
        flt = _field_filter(match)
        return await self._shard.run(
            lambda shard: [stored_of(r) for records in _pages(shard, flt, True, with_vectors) for r in records]
        )

    async def person_ids_named(self, name: str) -> set[str]:
        request = qe.FacetRequest(key=PERSON_FIELD, limit=ID_PAGE, exact=True, filter=_field_filter({"name": [name]}))
        hits = await self._shard.run(lambda shard: shard.facet(request).hits)
        return {str(h.value) for h in hits if h.count > 0}

    async def get(self, point_id: str) -> FaceRecord | None:
        """The face with this id, or None."""
        if not is_point_id(point_id):
            return None
        records = await self._shard.run(lambda shard: shard.retrieve([str(point_id)], True, True))
        if not records:
            return None
        point = stored_of(records[0])
        return FaceRecord.from_payload(point.payload, point.vector)

    async def count(self) -> int:
        return await self._shard.run(lambda shard: shard.count(qe.CountRequest(exact=True)))

    async def stats(self) -> StoreStats:
        def gather(shard: qe.EdgeShard) -> StoreStats:
            faces = shard.count(qe.CountRequest(exact=True))
            limit = max(faces, 1)  # distinct values can't outnumber faces: an exact, bounded facet

            def values(key: str) -> list[str]:
                # Exact facets may list a value whose faces were all deleted, with count 0.
                hits = shard.facet(qe.FacetRequest(key=key, limit=limit, exact=True)).hits
                return [str(h.value) for h in hits if h.count > 0]

            old = qe.Filter(must=[qe.IsEmptyCondition(PERSON_FIELD)], must_not=[qe.IsEmptyCondition("name")])
            return StoreStats(
                faces=faces,
                people=len(values(PERSON_FIELD)),
                models=sorted(values("model")),
                backend=self.backend,
                collection=self.collection,
                indexed=shard.info().indexed_vectors_count,
                without_identity=shard.count(qe.CountRequest(exact=True, filter=old)),
            )

        return await self._shard.run(gather)

    async def scroll_points(self, offset: str | None, limit: int) -> tuple[list[StoredPoint], str | None]:
        """A page of points in id order and the next page's offset (None at the end)."""
        request = qe.ScrollRequest(offset=offset, limit=check_k(limit, "limit"), with_payload=True, with_vector=True)
        records, next_offset = await self._shard.run(lambda shard: shard.scroll(request))
        return [stored_of(r) for r in records], (None if next_offset is None else str(next_offset))
