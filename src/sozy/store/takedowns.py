"""Takedowns: what was taken down stays down.

A takedown (``FaceStore.delete``) deletes the matching faces and records its
selector, and the store then refuses faces that match a recorded selector: a
re-crawl, a mirror of the same photo, or new photos of a person who asked to be
removed are not stored again. Taking a photo down by ``image_url`` also records
the sha256 of its bytes, so the same bytes at another URL stay out too.

The list lives with the faces (a JSON file beside the embedded store, a small
collection beside the server's); ``FaceStore.lift`` takes a takedown back.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sozy.records import utc_now

from .base import DELETE_FIELDS, StoredPoint, StoreError

log = logging.getLogger(__name__)

# Fields a recorded takedown may select on: the takedown fields and the photo's bytes.
TAKEDOWN_FIELDS: tuple[str, ...] = (*DELETE_FIELDS, "image_sha256")


@dataclass(frozen=True)
class Takedown:
    """Faces whose payload matches every field of ``selector`` are not stored."""

    selector: dict[str, str]
    created_at: str

    @property
    def key(self) -> str:
        """The selector in one canonical string: one takedown per selector."""
        return selector_key(self.selector)

    def to_dict(self) -> dict[str, Any]:
        return {"selector": dict(self.selector), "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Takedown:
        selector = data.get("selector")
        if not isinstance(selector, dict) or not selector:
            raise ValueError(f"a takedown needs a non-empty selector, not {selector!r}")
        return cls(selector=check_selector(selector), created_at=str(data.get("created_at") or ""))


def check_selector(selector: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(selector) - set(TAKEDOWN_FIELDS)
    if unknown:
        raise ValueError(f"unknown takedown fields {sorted(unknown)}; known: {', '.join(TAKEDOWN_FIELDS)}")
    if not selector:
        raise ValueError(f"a takedown needs at least one of {', '.join(TAKEDOWN_FIELDS)}")
    for field, value in selector.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"takedown field {field} must be a non-empty string")
    return {field: selector[field] for field in TAKEDOWN_FIELDS if field in selector}


def selector_key(selector: Mapping[str, str]) -> str:
    return json.dumps(sorted(selector.items()), ensure_ascii=False, separators=(",", ":"))


def takedown_point_id(selector: Mapping[str, str]) -> str:
    """A takedown's point id in the server's takedown collection: one point per selector."""
    return str(uuid.uuid5(_TAKEDOWN_NAMESPACE, selector_key(selector)))


_TAKEDOWN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/sozy-project/sozy/takedowns")


def takedowns_for(selector: Mapping[str, str], photo_sha256s: Iterable[str]) -> list[Takedown]:
    """What a takedown records: its selector and, when it names a photo by ``image_url``,
    the sha256 of that photo's bytes (the same bytes at another URL stay out too)."""
    created = utc_now()
    found = [Takedown(check_selector(selector), created)]
    if "image_url" in selector:
        found += [Takedown({"image_sha256": sha}, created) for sha in sorted(set(photo_sha256s)) if sha]
    return found


class TakedownList:
    """The recorded takedowns, matched against a face's payload.

    Takedowns are grouped by the fields they select on, so a match costs one set
    lookup per distinct field combination (a handful), however many there are.
    """

    def __init__(self, takedowns: Iterable[Takedown] = ()) -> None:
        self._by_key: dict[str, Takedown] = {}
        self._by_fields: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for takedown in takedowns:
            self.add(takedown)

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Iterator[Takedown]:
        return iter(sorted(self._by_key.values(), key=lambda t: (t.created_at, t.key)))

    def add(self, takedown: Takedown) -> bool:
        """Record a takedown; False when the same selector was already recorded."""
        if takedown.key in self._by_key:
            return False
        self._by_key[takedown.key] = takedown
        fields = tuple(takedown.selector)
        self._by_fields.setdefault(fields, set()).add(tuple(takedown.selector[f] for f in fields))
        return True

    def remove(self, selector: Mapping[str, str]) -> Takedown | None:
        takedown = self._by_key.pop(selector_key(selector), None)
        if takedown is not None:
            fields = tuple(takedown.selector)
            values = self._by_fields[fields]
            values.discard(tuple(takedown.selector[f] for f in fields))
            if not values:
                del self._by_fields[fields]
        return takedown

    def blocks(self, payload: Mapping[str, Any]) -> bool:
        """True when a recorded takedown matches this payload (every field of its selector)."""
        for fields, values in self._by_fields.items():
            if tuple(payload.get(f) for f in fields) in values:
                return True
        return False


def refuse_taken_down(points: Sequence[StoredPoint], takedowns: TakedownList) -> tuple[Sequence[StoredPoint], list[str]]:
    """The points no takedown matches, and the ids of those one does."""
    if not len(takedowns):
        return points, []
    kept: list[StoredPoint] = []
    refused: list[str] = []
    for point in points:
        if takedowns.blocks(point.payload):
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

    def load(self) -> TakedownList:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return TakedownList()
        except (OSError, ValueError) as exc:
            # Refuse to run without it: starting empty would let taken-down faces back in.
            raise StoreError(f"cannot read the takedown list {self.path}: {exc}; fix or restore that file") from None
        try:
            return TakedownList(Takedown.from_dict(item) for item in data["takedowns"])
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
