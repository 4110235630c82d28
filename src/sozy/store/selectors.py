"""What a takedown selects on, and the record of one (``Takedown``).

A module of its own, below ``base`` (whose ``FaceStore`` returns takedowns) and
``takedowns`` (which keeps and applies them), so neither has to import the other.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sozy.records import VECTOR_SIZE

# Fields a takedown (``FaceStore.delete``) may select on.
DELETE_FIELDS: tuple[str, ...] = ("image_url", "page_url", "name", "source", "person_id")
# Fields a recorded takedown may select on: the takedown fields and the photo's bytes.
TAKEDOWN_FIELDS: tuple[str, ...] = (*DELETE_FIELDS, "image_sha256")


@dataclass(frozen=True, eq=False)
class Takedown:
    """Faces whose payload matches every field of ``selector`` are not stored, nor faces within
    the takedown distance of one of ``vectors`` (a person's removed faces; may be empty)."""

    selector: dict[str, str]
    created_at: str
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, VECTOR_SIZE), np.float32))

    @property
    def key(self) -> str:
        """The selector in one canonical string: one takedown per selector."""
        return selector_key(self.selector)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"selector": dict(self.selector), "created_at": self.created_at}
        if len(self.vectors):
            # float32 bytes in base64: a sixth of the size of the numbers in JSON, and exact.
            data["vectors"] = base64.b64encode(np.ascontiguousarray(self.vectors, "<f4").tobytes()).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Takedown:
        selector = data.get("selector")
        if not isinstance(selector, dict) or not selector:
            raise ValueError(f"a takedown needs a non-empty selector, not {selector!r}")
        return cls(
            selector=check_selector(selector),
            created_at=str(data.get("created_at") or ""),
            vectors=_decode_vectors(data.get("vectors")),
        )


def _decode_vectors(text: Any) -> np.ndarray:
    if not text:
        return np.zeros((0, VECTOR_SIZE), np.float32)
    if not isinstance(text, str):
        raise ValueError("a takedown's vectors are base64 text")
    raw = base64.b64decode(text, validate=True)
    if len(raw) % (4 * VECTOR_SIZE):
        raise ValueError(f"a takedown's vectors are not whole {VECTOR_SIZE}-d float32 vectors")
    vectors = np.frombuffer(raw, "<f4").reshape(-1, VECTOR_SIZE).astype(np.float32)
    if not np.isfinite(vectors).all():
        raise ValueError("a takedown's vectors must be finite")
    return vectors


def check_selector(selector: Mapping[str, Any]) -> dict[str, str]:
    unknown = set(selector) - set(TAKEDOWN_FIELDS)
    if unknown:
        raise ValueError(f"unknown takedown fields {sorted(unknown)}; known: {', '.join(TAKEDOWN_FIELDS)}")
    if not selector:
        raise ValueError(f"a takedown needs at least one of {', '.join(TAKEDOWN_FIELDS)}")
    for name, value in selector.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"takedown field {name} must be a non-empty string")
    return {name: selector[name] for name in TAKEDOWN_FIELDS if name in selector}


def delete_selector(
    image_url: str | None = None,
    page_url: str | None = None,
    name: str | None = None,
    source: str | None = None,
    person_id: str | None = None,
) -> dict[str, str]:
    """The given takedown fields as ``{field: value}``; all must match. At least one is required,
    so a takedown can never empty the store by accident."""
    given = {"image_url": image_url, "page_url": page_url, "name": name, "source": source, "person_id": person_id}
    selector = {key: value for key, value in given.items() if value is not None}
    if not selector:
        raise ValueError(f"delete needs at least one of {', '.join(DELETE_FIELDS)}")
    for key, value in selector.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"delete: {key} must be a non-empty string")
    return selector


def selector_key(selector: Mapping[str, str]) -> str:
    return json.dumps(sorted(selector.items()), ensure_ascii=False, separators=(",", ":"))
