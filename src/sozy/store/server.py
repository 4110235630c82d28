"""The Qdrant server face store (``AsyncQdrantClient``): for crawling and serving at once, and for scale.

The same code runs on qdrant-client's local mode (``location=":memory:"`` or ``path=``),
which speaks the same client API; that is how the tests exercise it. The calls that only
a real server answers (cluster status) are isolated in ``_cluster_nodes`` and skipped in
local mode.

Wait semantics: every write uses ``wait=True``. An upsert returns once Qdrant has applied
it, so when the crawler records a photo as done its faces are searchable and an error is
reported to the caller that can act on it, and a fast crawler is paced by the server
instead of piling up an unbounded update queue. A delete returns once the faces are gone,
so a takedown is complete when the command says so. Batching (``store.upsert_batch``)
pays for the round trip.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import time
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypedDict

import grpc
import httpx
import numpy as np
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m
from qdrant_client.common.client_exceptions import QdrantException
from qdrant_client.http.exceptions import ApiException

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
    identity_payload,
    is_point_id,
    merge_people,
    person_hit,
    record_points,
)
from .people import identities, take_down_person
from .selectors import Takedown, check_selector, delete_selector
from .takedowns import TakedownList, refuse_taken_down, takedown_point_id, takedowns_for

log = logging.getLogger(__name__)

# The query API (query_points, query_points_groups) and facet counts need Qdrant 1.12+.
MIN_SERVER_VERSION = (1, 12)
# With a cluster: shards per node (room to rebalance when a node is added) and copies of each shard.
SHARDS_PER_NODE = 2
CLUSTER_REPLICATION = 2
# A takedown made elsewhere (the API on another host) reaches a running crawler within this.
TAKEDOWN_REFRESH_S = 30.0


# What a lost or refusing server raises: qdrant-client's own errors and those of its
# transports (httpx for REST, grpcio for gRPC, both qdrant-client dependencies).
_SERVER_ERRORS: tuple[type[BaseException], ...] = (
    ApiException,
    QdrantException,
    ConnectionError,
    TimeoutError,
    httpx.HTTPError,
    grpc.RpcError,
)


def parse_version(text: str) -> tuple[int, int, int]:
    """``"v1.12.4"`` → ``(1, 12, 4)``; missing parts are 0."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]]
    if not numbers:
        raise ValueError(f"not a version: {text!r}")
    padded = [*numbers, 0, 0]
    return padded[0], padded[1], padded[2]


def check_server_version(server: str, client: str | None = None) -> list[str]:
    """Refuse a server too old for the calls Sozy makes; return warnings for a client/server
    skew beyond one minor version (Qdrant's own compatibility rule)."""
    version = parse_version(server)
    if version[:2] < MIN_SERVER_VERSION:
        need = ".".join(map(str, MIN_SERVER_VERSION))
        raise StoreError(
            f"Qdrant server {server} is too old: Sozy needs {need} or newer (query API, facet counts); "
            f"upgrade the server (the qdrant/qdrant image in docker-compose.yml is pinned to a supported version)"
        )
    notes = []
    if client:
        mine = parse_version(client)
        if mine[0] != version[0] or abs(mine[1] - version[1]) > 1:
            notes.append(
                f"qdrant-client {client} and Qdrant server {server} are more than one minor version apart; "
                "upgrade whichever is older"
            )
    return notes


class ClusterLayout(TypedDict, total=False):
    """``create_collection``'s sharding arguments."""

    shard_number: int
    replication_factor: int


def collection_layout(nodes: int) -> ClusterLayout:
    """Sharding for a new collection on a cluster of ``nodes`` peers (empty for one node).

    Two shards per node, so a node added later can take shards over without resharding,
    and two copies of each shard, so the cluster keeps serving when one node is down.
    """
    if nodes <= 1:
        return ClusterLayout()
    return ClusterLayout(shard_number=SHARDS_PER_NODE * nodes, replication_factor=min(CLUSTER_REPLICATION, nodes))


def _field_filter(selector: dict[str, str]) -> m.Filter:
    """Faces whose payload has every one of these field values."""
    return m.Filter(must=[m.FieldCondition(key=k, match=m.MatchValue(value=v)) for k, v in selector.items()])


class ServerStore:
    """The server backend. Open with ``await ServerStore.open(settings)`` (or ``location``/``path``
    for qdrant-client's local mode)."""

    backend = "server"

    def __init__(self, client: AsyncQdrantClient, settings: StoreSettings, *, remote: bool, where: str) -> None:
        self._client = client
        self._settings = settings
        self.collection = settings.collection
        self.remote = remote
        self.where = where
        self.server_version = ""
        self.nodes = 1
        # The takedown collection, read again when older than TAKEDOWN_REFRESH_S.
        self.takedown_collection = f"{settings.collection}_takedowns"
        self._takedowns = TakedownList(distance=settings.takedown_distance)
        self._takedowns_read = -float("inf")

    @classmethod
    async def open(
        cls,
        settings: StoreSettings,
        *,
        location: str | None = None,
        path: str | None = None,
        create: bool = True,
    ) -> ServerStore:
        """Connect, check the server version, create the collection if missing (or refuse a
        mismatched one), and ensure the payload indexes.

        ``settings.url`` is the server; ``location=":memory:"`` or ``path=...`` selects
        qdrant-client's local mode instead. ``create=False`` refuses a missing collection.
        """
        remote = location is None and path is None
        where = settings.url if remote else (path or location or "")
        try:
            if remote:
                client = AsyncQdrantClient(
                    url=settings.url,
                    api_key=settings.api_key or None,
                    prefer_grpc=settings.prefer_grpc,
                    timeout=max(1, int(settings.timeout_s)),
                    # Checked below, once, with a clear error instead of a background warning.
                    check_compatibility=False,
                )
            else:
                client = AsyncQdrantClient(location=location, path=path)
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise StoreInUse(
                    f"the local Qdrant store {where} is in use by another client; stop that process first, "
                    "or use a Qdrant server (store.url) to share a store"
                ) from None
            raise
        store = cls(client, settings, remote=remote, where=where)
        try:
            with store._errors("connecting to"):
                await store._setup(create)
        except BaseException:
            await client.close()
            raise
        return store

    async def _setup(self, create: bool) -> None:
        info = await self._client.info()
        self.server_version = info.version
        for note in check_server_version(info.version, importlib.metadata.version("qdrant-client")):
            log.warning(note)
        if self.remote:
            self.nodes = await _cluster_nodes(self._client)
        if await self._client.collection_exists(self.collection):
            await self._check_collection()
        elif not create:
            raise StoreError(f"there is no collection {self.collection!r} at {self.where}")
        else:
            await self._create_collection()
        await self._ensure_indexes()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (StoreError, ValueError):
            raise
        except _SERVER_ERRORS as exc:
            # One line: the CLI prints it as its reason, logs keep it on one record.
            text = " ".join(str(exc).split()) or type(exc).__name__
            hint = " (check store.api_key)" if re.search(r"\b(401|403)\b|unauthori[sz]ed|forbidden", text, re.I) else ""
            raise StoreError(
                f"Qdrant at {self.where}: {doing} collection {self.collection!r} failed: {text}{hint}"
            ) from exc

    async def _check_collection(self) -> None:
        info = await self._client.get_collection(self.collection)
        vectors = info.config.params.vectors
        if not isinstance(vectors, m.VectorParams):
            names = sorted(vectors or {})
            raise StoreMismatch(
                f"collection {self.collection!r} at {self.where} has named vectors {names}, not Sozy's single "
                "face vector; set store.collection to another name"
            )
        if vectors.size != VECTOR_SIZE or vectors.distance != m.Distance.EUCLID:
            raise StoreMismatch(
                f"collection {self.collection!r} at {self.where} holds {vectors.size}-d {vectors.distance.value} "
                f"vectors; Sozy stores {VECTOR_SIZE}-d Euclid (dlib face descriptors). Set store.collection to "
                "another name, or delete that collection if it is a leftover"
            )

    async def _create_collection(self) -> None:
        cluster = collection_layout(self.nodes)
        if cluster:
            log.info("Qdrant cluster of %d nodes: collection %r gets %s", self.nodes, self.collection, cluster)
        try:
            await self._client.create_collection(
                self.collection,
                vectors_config=m.VectorParams(size=VECTOR_SIZE, distance=m.Distance.EUCLID),
                hnsw_config=m.HnswConfigDiff(m=self._settings.hnsw_m, ef_construct=self._settings.hnsw_ef_construct),
                quantization_config=m.ScalarQuantization(
                    scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99, always_ram=True)
                ),
                **cluster,
            )
        except _SERVER_ERRORS:
            # Another process (a second crawler) may have created it a moment ago.
            if not await self._client.collection_exists(self.collection):
                raise
            await self._check_collection()

    async def _ensure_indexes(self) -> None:
        info = await self._client.get_collection(self.collection)
        with warnings.catch_warnings():
            # Local mode accepts payload indexes but warns that they have no effect there.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for field in KEYWORD_FIELDS:
                if field not in info.payload_schema:
                    schema = (
                        m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, on_disk=True)
                        if field in ON_DISK_INDEX_FIELDS
                        else m.PayloadSchemaType.KEYWORD
                    )
                    await self._client.create_payload_index(self.collection, field, schema, wait=True)

    # -- writes -------------------------------------------------------------------------

    async def upsert(self, records: Sequence[FaceRecord]) -> list[str]:
        """Insert or replace faces, batched, each batch applied before the next (``wait=True``).

        Returns the ids of faces refused because a takedown matches them."""
        return await self.upsert_points(record_points(records))

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        # Payloads written before identities get theirs (a copy from an old store).
        points = [StoredPoint(p.id, p.vector, identity_payload(dict(p.payload))) for p in points]
        # Every vector checked before any is written; keyed by the point object itself.
        vectors = {id(p): check_vector(p.vector).tolist() for p in points}
        kept, refused = refuse_taken_down(points, await self._current_takedowns())
        batch = max(1, self._settings.upsert_batch)
        for start in range(0, len(kept), batch):
            structs = [
                m.PointStruct(id=p.id, vector=vectors[id(p)], payload=p.payload) for p in kept[start : start + batch]
            ]
            with self._errors("writing to"):
                await self._client.upsert(self.collection, points=structs, wait=True)
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

        The ids are read first and deleted by id (wait=True, so the call returns once
        the server applied it): a face a crawler adds meanwhile is neither deleted nor
        returned, so the ids are exactly what is gone; with ``block`` the crawler's next
        writes (within TAKEDOWN_REFRESH_S) refuse it.
        """
        selector = delete_selector(image_url, page_url, name, source, person_id)
        if name is not None or person_id is not None:  # a person (sozy.store.people)
            people = await identities(self, name=name, person_id=person_id)
            where = {k: v for k, v in selector.items() if k not in ("name", PERSON_FIELD)}
            distance = self._settings.takedown_distance
            return await take_down_person(self, people, where, distance, block=block) if people else []
        flt = _field_filter(selector)
        with_payload: Any = ["image_sha256"] if block and image_url is not None else False
        ids: list[str] = []
        photos: set[str] = set()
        offset: Any = None
        with self._errors("deleting from"):
            while True:
                records, offset = await self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    offset=offset,
                    limit=ID_PAGE,
                    with_payload=with_payload,
                    with_vectors=False,
                )
                ids.extend(str(r.id) for r in records)
                photos.update(str((r.payload or {}).get("image_sha256") or "") for r in records)
                if offset is None:
                    break
        if block:
            # Recorded before the delete: a crash in between leaves faces that can no
            # longer be re-added, and running the takedown again removes them.
            await self._record_takedowns(takedowns_for(selector, photos))
        with self._errors("deleting from"):
            for start in range(0, len(ids), ID_PAGE):
                selector_ids = m.PointIdsList(points=list(ids[start : start + ID_PAGE]))
                await self._client.delete(self.collection, points_selector=selector_ids, wait=True)
        return ids

    async def delete_ids(self, ids: Sequence[str]) -> None:
        with self._errors("deleting from"):
            for start in range(0, len(ids), ID_PAGE):
                chunk = m.PointIdsList(points=list(ids[start : start + ID_PAGE]))
                await self._client.delete(self.collection, points_selector=chunk, wait=True)

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        with self._errors("writing to"):
            for point_id, fields in updates.items():
                await self._client.set_payload(self.collection, payload=dict(fields), points=[point_id], wait=True)

    async def neighbours(
        self,
        vector: np.ndarray,
        k: int,
        *,
        person_id: str | None = None,
        named: bool | None = None,
        with_vectors: bool = False,
    ) -> list[FaceHit]:
        flt: m.Filter | None = None
        empty = m.IsEmptyCondition(is_empty=m.PayloadField(key=PERSON_FIELD))
        if person_id is not None:
            flt = _field_filter({PERSON_FIELD: person_id})
        elif named is not None:
            flt = m.Filter(must_not=[empty]) if named else m.Filter(must=[empty])
        return await self._nearest(check_vector(vector), check_k(k), flt, with_vector=with_vectors)

    async def faces_where(
        self, match: Mapping[str, Collection[str]], *, with_vectors: bool = False
    ) -> list[StoredPoint]:
        flt = m.Filter(must=[m.FieldCondition(key=f, match=m.MatchAny(any=list(v))) for f, v in match.items()])
        found: list[StoredPoint] = []
        offset: Any = None
        with self._errors("reading"):
            while True:
                records, offset = await self._client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    offset=offset,
                    limit=ID_PAGE,
                    with_payload=True,
                    with_vectors=with_vectors,
                )
                found.extend(
                    StoredPoint(
                        str(r.id),
                        np.asarray(r.vector if with_vectors else np.zeros(VECTOR_SIZE), np.float32),
                        dict(r.payload or {}),
                    )
                    for r in records
                )
                if offset is None:
                    return found

    async def person_ids_named(self, name: str) -> set[str]:
        with self._errors("reading"):
            hits = await self._client.facet(
                self.collection, key=PERSON_FIELD, facet_filter=_field_filter({"name": name}), limit=ID_PAGE, exact=True
            )
        return {str(h.value) for h in hits.hits if h.count > 0}

    async def _current_takedowns(self, *, fresh: bool = False) -> TakedownList:
        now = time.monotonic()
        if fresh or now - self._takedowns_read >= TAKEDOWN_REFRESH_S:
            self._takedowns = await self._read_takedowns()
            self._takedowns_read = now
        return self._takedowns

    async def _read_takedowns(self) -> TakedownList:
        found: list[Takedown] = []
        offset: Any = None
        with self._errors("reading the takedowns of"):
            if not await self._client.collection_exists(self.takedown_collection):
                return TakedownList(distance=self._settings.takedown_distance)
            while True:
                records, offset = await self._client.scroll(
                    self.takedown_collection, offset=offset, limit=ID_PAGE, with_payload=True, with_vectors=False
                )
                for record in records:
                    try:
                        found.append(Takedown.from_dict(record.payload or {}))
                    except ValueError as exc:
                        raise StoreError(
                            f"collection {self.takedown_collection!r} at {self.where} holds a malformed takedown "
                            f"{record.id}: {exc}"
                        ) from None
                if offset is None:
                    return TakedownList(found, self._settings.takedown_distance)

    async def _record_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        current = await self._current_takedowns(fresh=True)
        new = [t for t in takedowns if current.add(t)]
        if not new:
            return 0
        # Until written, the cached list is ahead of the server: a failed write must not leave it so.
        self._takedowns_read = -float("inf")
        with self._errors("recording a takedown in"):
            if not await self._client.collection_exists(self.takedown_collection):
                try:
                    # A point per takedown; the one-number vector is there because a collection needs one.
                    await self._client.create_collection(
                        self.takedown_collection, vectors_config=m.VectorParams(size=1, distance=m.Distance.DOT)
                    )
                except _SERVER_ERRORS:
                    if not await self._client.collection_exists(self.takedown_collection):
                        raise  # not a race with another process creating it
            points = [m.PointStruct(id=takedown_point_id(t.selector), vector=[1.0], payload=t.to_dict()) for t in new]
            await self._client.upsert(self.takedown_collection, points=points, wait=True)
        self._takedowns_read = time.monotonic()
        return len(new)

    async def taken_down(self, payload: Mapping[str, Any]) -> bool:
        return (await self._current_takedowns()).blocks(payload)

    async def takedowns(self) -> list[Takedown]:
        return list(await self._current_takedowns(fresh=True))

    async def add_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        return await self._record_takedowns(takedowns)

    async def lift(self, selector: Mapping[str, str]) -> bool:
        selector = check_selector(selector)
        current = await self._current_takedowns(fresh=True)
        if current.remove(selector) is None:
            return False
        self._takedowns_read = -float("inf")  # read again if the delete fails
        with self._errors("lifting a takedown in"):
            await self._client.delete(
                self.takedown_collection,
                points_selector=m.PointIdsList(points=[takedown_point_id(selector)]),
                wait=True,
            )
        self._takedowns_read = time.monotonic()
        return True

    async def optimize(self) -> bool:
        """Nothing to do: the server builds its index in the background as points arrive."""
        return False

    async def close(self, *, optimize: bool = True) -> None:
        """Close the connection (``optimize`` is for the embedded backend's signature: the server indexes by itself)."""
        await self._client.close()

    # -- reads --------------------------------------------------------------------------

    def _search_params(self, limit: int) -> m.SearchParams | None:
        if not self.remote:
            return None  # local mode is exact and warns that search params have no effect
        return m.SearchParams(
            hnsw_ef=max(self._settings.search_ef, limit),
            quantization=m.QuantizationSearchParams(rescore=True),
        )

    async def _nearest(
        self, vector: np.ndarray, limit: int, flt: m.Filter | None = None, *, with_vector: bool = False
    ) -> list[FaceHit]:
        with self._errors("searching"):
            response = await self._client.query_points(
                self.collection,
                query=vector.tolist(),
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=with_vector,
                search_params=self._search_params(limit),
            )
        return [_hit(p) for p in response.points]

    async def search(self, vector: np.ndarray, k: int = 10) -> list[FaceHit]:
        """The ``k`` nearest faces, by ascending L2 distance."""
        return await self._nearest(check_vector(vector), check_k(k))

    async def search_people(
        self, vector: np.ndarray, k: int = 5, per_person: int = 1, *, unnamed: bool = False
    ) -> list[PersonHit]:
        """The ``k`` nearest distinct people, grouped by the server (``query_points_groups`` on
        ``person_id``).

        Qdrant's group-by skips points without the field, which is what a default search
        wants: faces of nobody known are not offered. With ``unnamed`` they are, each a
        person of its own: the nearest come from a second query, merged by distance.
        """
        query = check_vector(vector)
        check_k(k)
        check_k(per_person, "per_person")
        with self._errors("searching"):
            groups = await self._client.query_points_groups(
                self.collection,
                query=query.tolist(),
                group_by=PERSON_FIELD,
                limit=k,
                group_size=per_person,
                with_payload=True,
                search_params=self._search_params(k * per_person),
            )
        people = [person_hit([_hit(p) for p in group.hits]) for group in groups.groups if group.hits]
        if not unnamed:
            return people
        unnamed_filter = m.Filter(must=[m.IsEmptyCondition(is_empty=m.PayloadField(key=PERSON_FIELD))])
        return merge_people(people, await self._nearest(query, k, unnamed_filter), k)

    async def get(self, point_id: str) -> FaceRecord | None:
        """The face with this id, or None."""
        if not is_point_id(point_id):
            return None
        with self._errors("reading"):
            records = await self._client.retrieve(
                self.collection, ids=[str(point_id)], with_payload=True, with_vectors=True
            )
        if not records:
            return None
        return FaceRecord.from_payload(dict(records[0].payload or {}), np.asarray(records[0].vector, dtype=np.float32))

    async def count(self) -> int:
        with self._errors("counting"):
            return (await self._client.count(self.collection, exact=True)).count

    async def stats(self) -> StoreStats:
        with self._errors("reading"):
            faces = (await self._client.count(self.collection, exact=True)).count
            limit = max(faces, 1)  # distinct values can't outnumber faces: an exact, bounded facet
            people = await self._client.facet(self.collection, key=PERSON_FIELD, limit=limit, exact=True)
            models = await self._client.facet(self.collection, key="model", limit=limit, exact=True)
            info = await self._client.get_collection(self.collection)
            old = m.Filter(
                must=[m.IsEmptyCondition(is_empty=m.PayloadField(key=PERSON_FIELD))],
                must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key="name"))],
            )
            without_identity = (await self._client.count(self.collection, count_filter=old, exact=True)).count
        return StoreStats(
            faces=faces,
            people=sum(1 for h in people.hits if h.count > 0),
            models=sorted(str(h.value) for h in models.hits if h.count > 0),
            backend=self.backend,
            collection=self.collection,
            indexed=info.indexed_vectors_count if self.remote else None,
            without_identity=without_identity,
        )

    async def scroll_points(self, offset: str | None, limit: int) -> tuple[list[StoredPoint], str | None]:
        """A page of points in id order and the next page's offset (None at the end)."""
        with self._errors("reading"):
            records, next_offset = await self._client.scroll(
                self.collection, offset=offset, limit=check_k(limit, "limit"), with_payload=True, with_vectors=True
            )
        points = [
            StoredPoint(str(r.id), np.asarray(r.vector, dtype=np.float32), dict(r.payload or {})) for r in records
        ]
        return points, (None if next_offset is None else str(next_offset))


def _hit(point: Any) -> FaceHit:
    vector = None if point.vector is None else np.asarray(point.vector, dtype=np.float32)
    return FaceHit(id=str(point.id), distance=float(point.score), payload=dict(point.payload or {}), vector=vector)


async def _cluster_nodes(client: AsyncQdrantClient) -> int:
    """Peers in the server's cluster, 1 when distributed mode is off. Server-only (REST)."""
    try:
        status = (await client.http.distributed_api.cluster_status()).result
    except _SERVER_ERRORS as exc:
        log.warning("could not read Qdrant's cluster status (%s); assuming a single node", exc)
        return 1
    if status is None or getattr(status, "status", "disabled") != "enabled":
        return 1
    return max(1, len(getattr(status, "peers", {}) or {}))
