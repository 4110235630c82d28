"""What every face store shares: the interface, its errors and the backend-neutral helpers.

Two backends implement :class:`FaceStore`: the embedded engine (``edge.py``, a
Qdrant engine inside this process) and the Qdrant server (``server.py``). The
helpers here hold the logic that must behave the same in both: input checks and
a payload's identity (people grouping is ``grouping``, takedowns ``selectors`` and
``takedowns``, what the backends share ``backend``).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sozy.records import VECTOR_SIZE, FaceHit, FaceRecord, Label, PersonHit, person_key

from .selectors import Takedown

# Payload fields with a keyword index: the ones filtered (takedown, per-person
# search, consensus), grouped (person_id) or counted (person_id, model).
KEYWORD_FIELDS: tuple[str, ...] = (
    "person_id",
    "name",
    "label",
    "image_url",
    "page_url",
    "source",
    "image_sha256",
    "model",
)
# Keyword indexes kept on disk (memory-mapped): nearly one distinct value per photo, so
# in RAM they were the largest part of a face's memory (docs/store.md), and they
# serve takedowns and dedup lookups, never a search.
ON_DISK_INDEX_FIELDS: frozenset[str] = frozenset({"image_url", "page_url", "image_sha256"})
# The payload field that shows a person's name, and the one that is the person (grouped, counted).
NAME_FIELD = "name"
PERSON_FIELD = "person_id"


class StoreError(Exception):
    """The store cannot do what was asked; the message says why and what to do."""


class StoreInUse(StoreError):
    """Another process has the embedded store open."""


class StoreMismatch(StoreError):
    """An existing collection holds vectors of another size or distance."""


@dataclass(frozen=True)
class StoreStats:
    """What a store holds."""

    faces: int
    # Distinct people (person_id); faces of nobody known are not counted here.
    people: int
    # Encoder + detector ids present (vectors of different models don't mix).
    models: list[str]
    backend: str  # "embedded" | "server"
    collection: str
    # Faces already in the vector index (HNSW); None where the backend doesn't say.
    indexed: int | None = None
    # Faces with a name but no person_id: written before identities, not offered until
    # `python -m sozy.store relabel` gives them one.
    without_identity: int = 0


@dataclass(frozen=True, eq=False)
class StoredPoint:
    """A point exactly as stored: id, vector and raw payload. Used to copy stores."""

    id: str
    vector: np.ndarray
    payload: dict[str, Any]


@runtime_checkable
class FaceStore(Protocol):
    """Stores face vectors with their payload and finds the nearest faces and people."""

    backend: str
    collection: str

    async def upsert(self, records: Sequence[FaceRecord]) -> list[str]:
        """Insert or replace faces; ids come from ``FaceRecord.id`` so re-upserting changes nothing.

        Faces matching a takedown are not stored; their ids are returned (usually none)."""

    async def search(self, vector: np.ndarray, k: int = 10) -> list[FaceHit]:
        """The ``k`` nearest faces, by ascending L2 distance."""

    async def search_people(
        self, vector: np.ndarray, k: int = 5, per_person: int = 1, *, unnamed: bool = False
    ) -> list[PersonHit]:
        """The ``k`` nearest distinct people (by payload ``person_id``), each with up to ``per_person``
        of their nearest faces. Faces of nobody known (no ``person_id``) are left out unless
        ``unnamed``; then each is a person of its own (``PersonHit.person_id`` None)."""

    async def get(self, point_id: str) -> FaceRecord | None:
        """The face with this id, or None."""

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
        """Delete the faces matching every given field (at least one); returns their ids.

        The ids are exactly the faces deleted, so their thumbnail files can follow. With
        ``block`` (a takedown) the selector is recorded and matching faces are refused from
        then on (see ``sozy.store.takedowns``); by ``image_url``, the photos' sha256 too.
        By ``name`` or ``person_id`` it takes a person down (``sozy.store.people``): every
        face of the identity and faces that are plainly them, refused from then on by face."""

    async def neighbours(
        self,
        vector: np.ndarray,
        k: int,
        *,
        person_id: str | None = None,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> list[FaceHit]:
        """The ``k`` nearest faces, of one person only (``person_id``) or of anyone (None); with
        their vectors if asked, and only these payload ``fields`` if given (reading whole
        payloads is half of a search's cost)."""

    async def faces_where(
        self, match: Mapping[str, Collection[str]], *, with_vectors: bool = False
    ) -> list[StoredPoint]:
        """Every face whose payload field has one of the given values, for every field given."""

    async def person_ids_named(self, name: str) -> set[str]:
        """The ``person_id``s of faces shown under exactly this name."""

    async def set_payloads(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        """Change some payload fields of these faces (by id); faces gone meanwhile are skipped."""

    async def delete_ids(self, ids: Sequence[str]) -> None:
        """Delete these faces (a takedown's last step; no takedown is recorded here)."""

    async def taken_down(self, payload: Mapping[str, Any]) -> bool:
        """Whether a recorded takedown matches these payload fields (a crawler asks before fetching)."""

    async def takedowns(self) -> list[Takedown]:
        """The recorded takedowns, oldest first."""

    async def add_takedowns(self, takedowns: Sequence[Takedown]) -> int:
        """Record takedowns without deleting anything (copying a store); returns how many were new."""

    async def lift(self, selector: Mapping[str, str]) -> bool:
        """Take a takedown back (its exact selector); False when there was none. Deleted faces stay deleted."""

    async def count(self) -> int:
        """How many faces are stored."""

    async def stats(self) -> StoreStats:
        """Faces, people, models."""

    async def scroll_points(self, offset: str | None, limit: int) -> tuple[list[StoredPoint], str | None]:
        """A page of stored points in id order, and the offset of the next page (None at the end)."""

    async def upsert_points(self, points: Sequence[StoredPoint]) -> list[str]:
        """Insert or replace raw points (the copy command's write path); returns the ids refused by a takedown."""

    async def optimize(self) -> bool:
        """Build the search index for what was added; True when something was built."""

    async def close(self, *, optimize: bool = True) -> None:
        """Flush and release the store; with ``optimize``, first build the search index for what was
        added where the backend builds it on demand (the embedded one)."""


def check_vector(vector: Any) -> np.ndarray:
    """A query or stored vector as 128 finite float32 values, or a clear ValueError."""
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (VECTOR_SIZE,):
        raise ValueError(f"a face vector has {VECTOR_SIZE} values, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("a face vector must not contain NaN or infinity")
    return array


def check_k(k: int, what: str = "k") -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{what} must be a positive integer, got {k!r}")
    return k


def is_point_id(value: str) -> bool:
    """Point ids are UUIDs; anything else names no point."""
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def hit_of(point: Any) -> FaceHit:
    """An engine's scored point (either backend's) as a FaceHit."""
    vector = None if point.vector is None else np.asarray(point.vector, dtype=np.float32)
    return FaceHit(id=str(point.id), distance=float(point.score), payload=dict(point.payload or {}), vector=vector)


def stored_of(record: Any) -> StoredPoint:
    """An engine's record (either backend's) as a StoredPoint; zeros where it came without its vector."""
    vector = np.asarray(record.vector if record.vector is not None else np.zeros(VECTOR_SIZE), dtype=np.float32)
    return StoredPoint(str(record.id), vector, dict(record.payload or {}))


def record_points(records: Iterable[FaceRecord]) -> list[StoredPoint]:
    """FaceRecords as points, each vector checked (a bad one names its photo) and each
    payload given its identity (see ``identity_payload``)."""
    points = []
    for record in records:
        try:
            vector = check_vector(record.vector)
        except ValueError as exc:
            raise ValueError(f"face in {record.image_url}: {exc}") from None
        points.append(StoredPoint(record.id, vector, identity_payload(record.payload())))
    return points


def identity_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload whose ``person_id`` and ``label`` agree with its ``name``: a named face with no
    ``person_id`` (a writer that knows only names, a store written before identities) gets
    ``person_key(name)`` and, unless it says otherwise, the label ``source``; a face with no
    person has no name and the label ``none``."""
    name = payload.get(NAME_FIELD)
    given = payload.get(PERSON_FIELD)
    person = (
        person_key(given) if isinstance(given, str) and given else (person_key(name) if isinstance(name, str) else "")
    )
    if person:
        payload[PERSON_FIELD] = person
        if payload.get("label") in (None, Label.NONE.value):
            payload["label"] = Label.SOURCE.value
    else:
        payload[PERSON_FIELD] = None
        payload["label"] = Label.NONE.value
    return payload


# Ids read per page when listing a takedown's faces.
ID_PAGE = 4096
