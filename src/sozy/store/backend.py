"""What both backends do alike, written once over the calls each one makes its own way.

``SharedStore`` is the base of ``EmbeddedStore`` and ``ServerStore``: writes (identity, vector
checks and takedowns before anything is stored), takedowns (by photo, page, source or person)
and the takedown list. A backend brings the engine calls (``upsert_points`` writing admitted
points, ``ids_where``, ``delete_ids``, ``neighbours`` ...) and where its takedowns live
(``TakedownRegistry``: a file beside the embedded store, a collection beside the server's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from sozy.records import FaceHit, FaceRecord

from .base import PERSON_FIELD, FaceStore, StoredPoint, check_vector, identity_payload, record_points
from .people import identities, take_down_person
from .selectors import Takedown, check_selector, delete_selector
from .takedowns import TakedownList, refuse_taken_down, takedowns_for


class TakedownRegistry(Protocol):
    """Where a backend keeps its takedowns."""

    @property
    def distance(self) -> float:
        """``store.takedown_distance``: a taken-down person's new faces closer than this are refused."""

    async def current(self, *, fresh: bool = False) -> TakedownList:
        """The takedowns in force (``fresh``: read again where others may have added some)."""

    async def record(self, takedowns: Sequence[Takedown]) -> int:
        """Record these takedowns; returns how many were new."""

    async def lift(self, selector: Mapping[str, str]) -> bool:
        """Drop the takedown with exactly this selector; False when there was none."""


class Backend(FaceStore, Protocol):
    """A backend as the shared methods see it: the store, its takedown registry and a filtered id listing."""

    @property
    def registry(self) -> TakedownRegistry: ...

    async def ids_where(self, selector: Mapping[str, str], *, photos: bool) -> tuple[list[str], set[str]]:
        """The ids of the faces matching every field of ``selector`` and, with ``photos``, their photos' sha256."""


class SharedStore:
    """The methods of ``FaceStore`` that both backends share."""

    async def upsert(self: Backend, records: Sequence[FaceRecord]) -> list[str]:
        """Insert or replace faces (ids from ``FaceRecord.id``: re-upserting changes nothing).

        Returns the ids of faces refused because a takedown matches them."""
        return await self.upsert_points(record_points(records))

    async def admit(self: Backend, points: Sequence[StoredPoint]) -> tuple[Sequence[StoredPoint], list[str]]:
        """The points to write and the ids refused by a takedown. Every vector is checked before
        any point is written, and payloads written before identities get theirs (a copy from an
        old store)."""
        checked = [StoredPoint(p.id, check_vector(p.vector), identity_payload(dict(p.payload))) for p in points]
        return refuse_taken_down(checked, await self.registry.current())

    async def search(self: Backend, vector: np.ndarray, k: int = 10) -> list[FaceHit]:
        """The ``k`` nearest faces, by ascending L2 distance."""
        return await self.neighbours(vector, k)

    async def delete(
        self: Backend,
        *,
        image_url: str | None = None,
        page_url: str | None = None,
        name: str | None = None,
        source: str | None = None,
        person_id: str | None = None,
        block: bool = True,
    ) -> list[str]:
        """Delete the faces matching every given field; returns their ids. ``block``: record the takedown.

        By ``name`` or ``person_id``: the person (``sozy.store.people``). Otherwise the ids are
        read first and deleted by id: a face a writer adds meanwhile is neither deleted nor
        returned, so the ids are exactly what is gone, and with ``block`` it is refused from the
        writer's next look at the takedowns on."""
        selector = delete_selector(image_url, page_url, name, source, person_id)
        if name is not None or person_id is not None:
            people = await identities(self, name=name, person_id=person_id)
            where = {k: v for k, v in selector.items() if k not in ("name", PERSON_FIELD)}
            distance = self.registry.distance
            return await take_down_person(self, people, where, distance, block=block) if people else []
        # The photos' sha256 is needed only to block the same bytes elsewhere.
        ids, photos = await self.ids_where(selector, photos=block and image_url is not None)
        if block:
            # Recorded before the delete: a crash in between leaves faces that can no
            # longer be re-added, and running the takedown again removes them.
            await self.registry.record(takedowns_for(selector, photos))
        await self.delete_ids(ids)
        return ids

    async def taken_down(self: Backend, payload: Mapping[str, Any]) -> bool:
        return (await self.registry.current()).blocks(payload)

    async def takedowns(self: Backend) -> list[Takedown]:
        return list(await self.registry.current(fresh=True))

    async def add_takedowns(self: Backend, takedowns: Sequence[Takedown]) -> int:
        return await self.registry.record(takedowns)

    async def lift(self: Backend, selector: Mapping[str, str]) -> bool:
        return await self.registry.lift(check_selector(selector))
