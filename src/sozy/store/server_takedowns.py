"""The server's takedowns: a small collection beside the faces', one point per takedown.

Every process using the server reads it again when its copy is older than
``TAKEDOWN_REFRESH_S``, so a takedown made elsewhere (the API on another host) reaches a
running crawler within that time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from qdrant_client import AsyncQdrantClient
from qdrant_client import models as m

from .base import StoreError
from .selectors import Takedown
from .server_client import SERVER_ERRORS, scroll_pages, server_errors
from .takedowns import TakedownList, takedown_point_id

TAKEDOWN_REFRESH_S = 30.0


class CollectionTakedowns:
    """The takedowns of the faces in ``collection``, kept in the collection ``<collection>_takedowns``."""

    def __init__(self, client: AsyncQdrantClient, collection: str, where: str, distance: float) -> None:
        self._client = client
        self._faces = collection
        self.collection = f"{collection}_takedowns"
        self._where = where
        self.distance = distance
        self._list = TakedownList(distance=distance)
        self._read_at = -float("inf")

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        with server_errors(self._where, self._faces, doing):
            yield

    async def current(self, *, fresh: bool = False) -> TakedownList:
        now = time.monotonic()
        if fresh or now - self._read_at >= TAKEDOWN_REFRESH_S:
            self._list = await self._read()
            self._read_at = now
        return self._list

    async def _read(self) -> TakedownList:
        found: list[Takedown] = []
        with self._errors("reading the takedowns of"):
            if not await self._client.collection_exists(self.collection):
                return TakedownList(distance=self.distance)
            async for records in scroll_pages(self._client, self.collection):
                for record in records:
                    try:
                        found.append(Takedown.from_dict(record.payload or {}))
                    except ValueError as exc:
                        raise StoreError(
                            f"collection {self.collection!r} at {self._where} holds a malformed takedown "
                            f"{record.id}: {exc}"
                        ) from None
        return TakedownList(found, self.distance)

    async def record(self, takedowns: Sequence[Takedown]) -> int:
        current = await self.current(fresh=True)
        new = [t for t in takedowns if current.add(t)]
        if not new:
            return 0
        # Until written, the cached list is ahead of the server: a failed write must not leave it so.
        self._read_at = -float("inf")
        with self._errors("recording a takedown in"):
            if not await self._client.collection_exists(self.collection):
                try:
                    # A point per takedown; the one-number vector is there because a collection needs one.
                    await self._client.create_collection(
                        self.collection, vectors_config=m.VectorParams(size=1, distance=m.Distance.DOT)
                    )
                except SERVER_ERRORS:
                    if not await self._client.collection_exists(self.collection):
                        raise  # not a race with another process creating it
            points = [m.PointStruct(id=takedown_point_id(t.selector), vector=[1.0], payload=t.to_dict()) for t in new]
            await self._client.upsert(self.collection, points=points, wait=True)
        self._read_at = time.monotonic()
        return len(new)

    async def lift(self, selector: Mapping[str, str]) -> bool:
        current = await self.current(fresh=True)
        if current.remove(selector) is None:
            return False
        self._read_at = -float("inf")  # read again if the delete fails
        with self._errors("lifting a takedown in"):
            await self._client.delete(
                self.collection,
                points_selector=m.PointIdsList(points=[takedown_point_id(selector)]),
                wait=True,
            )
        self._read_at = time.monotonic()
        return True
