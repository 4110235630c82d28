"""Taking a person down: every face of the identity, and faces that are plainly them.

A takedown by name or ``person_id`` is about a person, not a string. It

1. resolves the identity: the key of the name (``person_key``), a Q-id as given, and the
   ``person_id`` of faces shown under exactly that name (a Wikidata person is found by
   their label too);
2. collects every face of those identities (labelled by a source, or attached by
   consensus) and every face within ``store.takedown_distance`` of one of them, whatever
   its label (the person in group photos and page crawls nobody named);
3. records the takedown with those faces' vectors, so new faces of the person are refused
   at write time whatever name they come with (``sozy.store.takedowns``);
4. deletes the faces, then looks once more for faces a crawler stored meanwhile.

Backend-neutral: it drives a store through ``FaceStore`` calls only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from sozy.records import person_key

from .base import PERSON_FIELD, FaceStore, StoredPoint
from .takedowns import takedowns_for

# Faces looked at around each removed face when finding the person's unlabelled faces.
NEIGHBOURS_PER_FACE = 16


async def identities(store: FaceStore, *, name: str | None, person_id: str | None) -> list[str]:
    """The ``person_id``s a takedown by this name or id means (sorted; empty for a blank name)."""
    found: set[str] = set()
    if person_id is not None and person_key(person_id):
        found.add(person_key(person_id))
    if name is not None:
        if person_key(name):
            found.add(person_key(name))
        found |= await store.person_ids_named(name)
    return sorted(found)


async def take_down_person(
    store: FaceStore,
    people: Sequence[str],
    where: Mapping[str, str],
    distance: float,
    *,
    block: bool,
) -> list[str]:
    """Delete every face of ``people`` (narrowed by the other selector fields ``where``) and,
    for a takedown of the whole person, faces within ``distance`` of them; returns the ids.

    With ``block``, one takedown per identity is recorded, carrying the removed faces' vectors."""
    match: dict[str, Collection[str]] = {PERSON_FIELD: list(people), **{k: [v] for k, v in where.items()}}
    faces = await store.faces_where(match, with_vectors=True)
    if not where:
        faces += await _lookalike_faces(store, faces, distance)
    vectors = np.stack([f.vector for f in faces]) if faces else np.zeros((0, 128), np.float32)
    if block:
        # Recorded before the delete: a crash in between leaves faces that can no longer be
        # re-added, and running the takedown again removes them.
        for person in people:
            selector = {PERSON_FIELD: person, **where}
            await store.add_takedowns(takedowns_for(selector, (), vectors))
    ids = list(dict.fromkeys(f.id for f in faces))
    await store.delete_ids(ids)
    if block:
        # A crawler may have stored a face of theirs between the read and the takedown.
        late = [f.id for f in await store.faces_where(match) if f.id not in set(ids)]
        await store.delete_ids(late)
        ids += late
    return ids


async def _lookalike_faces(store: FaceStore, faces: Sequence[StoredPoint], distance: float) -> list[StoredPoint]:
    """Faces of other labels (or none) within ``distance`` of one of ``faces``: the person in
    photos nobody named them in, or under another name."""
    own = {f.id for f in faces}
    found: dict[str, StoredPoint] = {}
    for face in faces:
        for hit in await store.neighbours(face.vector, NEIGHBOURS_PER_FACE, with_vectors=True):
            if hit.distance < distance and hit.id not in own and hit.id not in found and hit.vector is not None:
                found[hit.id] = StoredPoint(hit.id, hit.vector, hit.payload)
    return list(found.values())
