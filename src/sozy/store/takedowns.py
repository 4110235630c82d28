"""Takedowns: what was taken down stays down.

A takedown (``FaceStore.delete``) deletes the matching faces and records its
selector, and the store then refuses faces that match a recorded selector: a
re-crawl, a mirror of the same photo, or new photos of a person who asked to be
removed are not stored again. Taking a photo down by ``image_url`` also records
the sha256 of its bytes, so the same bytes at another URL stay out too.

Taking a person down (by ``person_id`` or name) also keeps the descriptors of the
faces it removed (128 numbers each, no photo, no crop): a new face within
``store.takedown_distance`` of one of them is refused whatever name it comes with,
or none (a group photo, a page crawl). Lifting the takedown drops them.

The list lives with the faces (a JSON file beside the embedded store, a small
collection beside the server's); ``FaceStore.lift`` takes a takedown back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sozy.records import VECTOR_SIZE, utc_now

from .base import StoredPoint, StoreError
from .selectors import Takedown, check_selector, selector_key

log = logging.getLogger(__name__)


def takedown_point_id(selector: Mapping[str, str]) -> str:
    """A takedown's point id in the server's takedown collection: one point per selector."""
    return str(uuid.uuid5(_TAKEDOWN_NAMESPACE, selector_key(selector)))


_TAKEDOWN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/sozy-project/sozy/takedowns")


def takedowns_for(
    selector: Mapping[str, str], photo_sha256s: Iterable[str], vectors: np.ndarray | None = None
) -> list[Takedown]:
    """What a takedown records: its selector (with the removed faces' ``vectors`` for a
    person) and, when it names a photo by ``image_url``, the sha256 of that photo's bytes
    (the same bytes at another URL stay out too)."""
    created = utc_now()
    first = Takedown(check_selector(selector), created)
    if vectors is not None and len(vectors):
        first = Takedown(first.selector, created, np.asarray(vectors, np.float32).reshape(-1, VECTOR_SIZE))
    found = [first]
    if "image_url" in selector:
        found += [Takedown({"image_sha256": sha}, created) for sha in sorted(set(photo_sha256s)) if sha]
    return found


class TakedownList:
    """The recorded takedowns, matched against a face's payload.

    Takedowns are grouped by the fields they select on, so a match costs one set
    lookup per distinct field combination (a handful), however many there are.
    """

    def __init__(self, takedowns: Iterable[Takedown] = (), distance: float = 0.6) -> None:
        self._by_key: dict[str, Takedown] = {}
        self._by_fields: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        # Every takedown's vectors in one matrix, rebuilt after a change (takedowns are rare).
        self.distance = distance
        self._vectors: np.ndarray | None = None
        for takedown in takedowns:
            self.add(takedown)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Takedown]:
        return iter(sorted(self._by_key.values(), key=lambda t: (t.created_at, t.key)))

    def add(self, takedown: Takedown) -> bool:
        """Record a takedown; False when the same selector was already recorded with no new
        vectors (a person taken down again keeps the vectors of both times)."""
        known = self._by_key.get(takedown.key)
        if known is not None:
            if not len(takedown.vectors):
                return False
            merged = np.unique(np.concatenate([known.vectors, takedown.vectors]), axis=0)
            if len(merged) == len(known.vectors):
                return False
            self._by_key[takedown.key] = Takedown(known.selector, known.created_at, merged)
            self._vectors = None
            return True
        self._by_key[takedown.key] = takedown
        self._vectors = None
        fields = tuple(takedown.selector)
        self._by_fields.setdefault(fields, set()).add(tuple(takedown.selector[f] for f in fields))
        return True

    def remove(self, selector: Mapping[str, str]) -> Takedown | None:
        takedown = self._by_key.pop(selector_key(selector), None)
        if takedown is not None:
            self._vectors = None
            fields = tuple(takedown.selector)
            values = self._by_fields[fields]
            values.discard(tuple(takedown.selector[f] for f in fields))
            if not values:
                del self._by_fields[fields]
        return takedown

    def blocks(self, payload: Mapping[str, Any]) -> bool:
        """True when a recorded takedown matches this payload (every field of its selector)."""
        return any(tuple(payload.get(f) for f in fields) in values for fields, values in self._by_fields.items())

    @property
    def vectors(self) -> np.ndarray:
        """The removed faces' vectors of every person taken down, one matrix."""
        if self._vectors is None:
            parts = [t.vectors for t in self._by_key.values() if len(t.vectors)]
            self._vectors = np.concatenate(parts) if parts else np.zeros((0, VECTOR_SIZE), np.float32)
        return self._vectors

    def blocks_faces(self, vectors: np.ndarray) -> np.ndarray:
        """For each of ``vectors``, whether it lies within ``distance`` of a taken-down face."""
        removed = self.vectors
        if not len(removed) or not len(vectors):
            return np.zeros(len(vectors), dtype=bool)
        queries = np.asarray(vectors, np.float32).reshape(-1, VECTOR_SIZE)
        # Squared L2 by the expansion |a|² - 2ab + |b|²: one matrix product for the batch.
        squared = (queries**2).sum(1)[:, None] - 2.0 * queries @ removed.T + (removed**2).sum(1)[None, :]
        return np.asarray(squared.min(axis=1) < self.distance**2, dtype=bool)


def refuse_taken_down(
    points: Sequence[StoredPoint], takedowns: TakedownList
) -> tuple[Sequence[StoredPoint], list[str]]:
    """The points no takedown matches (by payload, or as a taken-down person's face), and the
    ids of those one does."""
    if not len(takedowns):
        return points, []
    near = takedowns.blocks_faces(np.stack([p.vector for p in points])) if len(takedowns.vectors) and points else None
    kept: list[StoredPoint] = []
    refused: list[str] = []
    for i, point in enumerate(points):
        if takedowns.blocks(point.payload) or (near is not None and near[i]):
            refused.append(point.id)
        else:
            kept.append(point)
    if refused:
        log.info("%d faces not stored: a takedown matches them", len(refused))
    return kept, refused


class TakedownFile:
    """The embedded store's takedowns: a JSON file beside the shard (one process at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, distance: float = 0.6) -> TakedownList:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return TakedownList(distance=distance)
        except (OSError, ValueError) as exc:
            # Refuse to run without it: starting empty would let taken-down faces back in.
            raise StoreError(f"cannot read the takedown list {self.path}: {exc}; fix or restore that file") from None
        try:
            return TakedownList((Takedown.from_dict(item) for item in data["takedowns"]), distance)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"the takedown list {self.path} is malformed ({exc}); fix or restore that file") from None

    def save(self, takedowns: TakedownList) -> None:
        """Write the whole list atomically (temporary file, fsync, rename)."""
        text = json.dumps({"takedowns": [t.to_dict() for t in takedowns]}, ensure_ascii=False, indent=1)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class FileTakedowns:
    """The embedded store's takedowns: the list in memory, written to its file on every change
    (one process per store, so the file is read once)."""

    def __init__(self, file: TakedownFile, distance: float) -> None:
        self.file = file
        self.distance = distance
        self._list = file.load(distance)
        self._changing = asyncio.Lock()

    async def current(self, *, fresh: bool = False) -> TakedownList:
        return self._list

    async def record(self, takedowns: Sequence[Takedown]) -> int:
        async with self._changing:
            added = sum(self._list.add(t) for t in takedowns)
            if added:
                await asyncio.to_thread(self._save)
            return added

    async def lift(self, selector: Mapping[str, str]) -> bool:
        async with self._changing:
            if self._list.remove(selector) is None:
                return False
            await asyncio.to_thread(self._save)
            return True

    def _save(self) -> None:
        try:
            self.file.save(self._list)
        except BaseException:
            self._list = self.file.load(self.distance)  # memory must not run ahead of the file
            raise
