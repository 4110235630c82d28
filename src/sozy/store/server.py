"""The Qdrant server face store (``AsyncQdrantClient``): for crawling and serving at once, and for scale.

The same code runs on qdrant-client's local mode (``location=":memory:"`` or ``path=``),
which speaks the same client API; that is how the tests exercise it. The calls that only
a real server answers (cluster status) are isolated in ``server_setup.cluster_nodes`` and
skipped in local mode.

Wait semantics: every write uses ``wait=True``. An upsert returns once Qdrant has applied
it, so when the crawler records a photo as done its faces are searchable and an error is
reported to the caller that can act on it, and a fast crawler is paced by the server
instead of piling up an unbounded update queue. A delete returns once the faces are gone,
so a takedown is complete when the command says so; a running crawler refuses the faces
it took down from its next read of the takedowns on (``server_takedowns``). Batching
(``store.upsert_batch``) pays for the round trip.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m

from sozy.config import StoreSettings
from sozy.records import FaceHit, FaceRecord, PersonHit

from .backend import SharedStore
from .base import (
    ID_PAGE,
    PERSON_FIELD,
    StoredPoint,
    StoreError,
    StoreInUse,
    StoreStats,
    check_k,
    check_vector,
    hit_of,
    is_point_id,
    stored_of,
)
from .grouping import merge_people, person_hit
from .server_client import scroll_pages, server_errors
from .server_setup import (
    check_collection,
    check_server_version,
    cluster_nodes,
    create_collection,
    ensure_indexes,
)
from .server_takedowns import CollectionTakedowns

log = logging.getLogger(__name__)


def _field_filter(match: Mapping[str, Collection[str]]) -> m.Filter:
    """Faces whose payload field has one of the given values, for every field given."""
    return m.Filter(must=[m.FieldCondition(key=f, match=m.MatchAny(any=list(v))) for f, v in match.items()])


def _no_person() -> m.IsEmptyCondition:
    return m.IsEmptyCondition(is_empty=m.PayloadField(key=PERSON_FIELD))


class ServerStore(SharedStore):
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
        self.registry = CollectionTakedowns(client, settings.collection, where, settings.takedown_distance)

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
            self.nodes = await cluster_nodes(self._client)
        if await self._client.collection_exists(self.collection):
            await check_collection(self._client, self.collection, self.where)
        elif not create:
            raise StoreError(f"there is no collection {self.collection!r} at {self.where}")
        else:
            await create_collection(self._client, self._settings, self.where, self.nodes)
        await ensure_indexes(self._client, self.collection)

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        with server_errors(self.where, self.collection, doing):
            yield

    # -- writes -------------------------------------------------------------------------

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        """Write the admitted points in batches, each applied before the next (``wait=True``)."""
        kept, refused = await self.admit(points)
        batch = self._settings.upsert_batch
        for start in range(0, len(kept), batch):
            structs = [
                m.PointStruct(id=p.id, vector=p.vector.tolist(), payload=p.payload) for p in kept[start : start + batch]
            ]
            with self._errors("writing to"):
                await self._client.upsert(self.collection, points=structs, wait=True)
        return refused

    async def ids_where(self, selector: Mapping[str, str], *, photos: bool) -> tuple[list[str], set[str]]:
        flt = _field_filter({field: [value] for field, value in selector.items()})
        ids: list[str] = []
        sha256s: set[str] = set()
        with self._errors("deleting from"):
            async for records in scroll_pages(
                self._client, self.collection, flt, with_payload=["image_sha256"] if photos else False
            ):
                ids.extend(str(r.id) for r in records)
                sha256s.update(str((r.payload or {}).get("image_sha256") or "") for r in records)
        return ids, sha256s

    async def delete_ids(self, ids: Sequence[str]) -> None:
        with self._errors("deleting from"):
            for start in range(0, len(ids), ID_PAGE):
                chunk = m.PointIdsList(points=list(ids[start : start + ID_PAGE]))
                await self._client.delete(self.collection, points_selector=chunk, wait=True)

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        with self._errors("writing to"):
            for point_id, fields in updates.items():
                await self._client.set_payload(self.collection, payload=dict(fields), points=[point_id], wait=True)

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
        self,
        vector: np.ndarray,
        limit: int,
        flt: m.Filter | None = None,
        *,
        with_vector: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[FaceHit]:
        with self._errors("searching"):
            response = await self._client.query_points(
                self.collection,
                query=vector.tolist(),
                query_filter=flt,
                limit=limit,
                with_payload=True if fields is None else list(fields),
                with_vectors=with_vector,
                search_params=self._search_params(limit),
            )
        return [hit_of(p) for p in response.points]

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
        people = [person_hit([hit_of(p) for p in group.hits]) for group in groups.groups if group.hits]
        if not unnamed:
            return people
        return merge_people(people, await self._nearest(query, k, m.Filter(must=[_no_person()])), k)

    async def faces_where(
        self, match: Mapping[str, Collection[str]], *, with_vectors: bool = False
    ) -> list[StoredPoint]:
        found: list[StoredPoint] = []
        with self._errors("reading"):
            async for records in scroll_pages(
                self._client, self.collection, _field_filter(match), with_vectors=with_vectors
            ):
                found.extend(stored_of(r) for r in records)
        return found

    async def person_ids_named(self, name: str) -> set[str]:
        with self._errors("reading"):
            hits = await self._client.facet(
                self.collection,
                key=PERSON_FIELD,
                facet_filter=_field_filter({"name": [name]}),
                limit=ID_PAGE,
                exact=True,
            )
        return {str(h.value) for h in hits.hits if h.count > 0}

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
        point = stored_of(records[0])
        return FaceRecord.from_payload(point.payload, point.vector)

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
            old = m.Filter(must=[_no_person()], must_not=[m.IsEmptyCondition(is_empty=m.PayloadField(key="name"))])
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
        return [stored_of(r) for r in records], (None if next_offset is None else str(next_offset))
