"""The records that flow between stages: sources → fetch → faces → store → api.

Plain dataclasses with no behaviour beyond conversion, so every stage can be
built and tested alone and nothing here imports a stage.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

VECTOR_SIZE = 128

# Namespace for deterministic point ids (uuid5 of sha256 + box).
_POINT_NAMESPACE = uuid.UUID("6f1d9a3e-5b1c-4c7e-9a52-3c0f5d7e8b21")


@dataclass(frozen=True, slots=True)
class Box:
    """A face box in the original photo's pixels (right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(0, self.width) * max(0, self.height)

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "right": self.right, "bottom": self.bottom}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Box:
        return cls(int(data["left"]), int(data["top"]), int(data["right"]), int(data["bottom"]))


@dataclass(frozen=True, slots=True, eq=False)
class Face:
    """One detected face: where it is and its 128-d descriptor (float32)."""

    box: Box
    vector: np.ndarray
    # Detector confidence when the detector gives one (CNN); HOG gives its score too.
    score: float = 0.0


@dataclass(frozen=True, slots=True)
class PhotoFaces:
    """What the engine found in one photo."""

    width: int
    height: int
    faces: list[Face]
    # Encoder + detector id, stored with each vector (vectors from different models don't mix).
    model: str = ""
    # Faces detected in the photo; ``faces`` holds only the largest of them when a cap applied.
    faces_in_image: int = 0


class Label(StrEnum):
    """Why a stored face carries its person (the payload's ``label``)."""

    SOURCE = "source"  # the source named the photo, and the face is its subject
    CONSENSUS = "consensus"  # matched a person's other faces (an unnamed or relabelled face)
    NONE = "none"  # nobody: kept for takedowns and later attachment, not offered as a lookalike


@dataclass(frozen=True, slots=True)
class Candidate:
    """A photo a source proposes: where it is, and what we know about who is in it."""

    image_url: str
    source: str
    page_url: str | None = None
    name: str | None = None
    # The person's stable identity when the source knows one (a Wikidata Q-id).
    person_id: str | None = None
    license: str | None = None
    license_url: str | None = None
    attribution: str | None = None
    # Commons' reuse terms: whether the licence asks for credit, and the file's restriction
    # templates ("personality" for personality rights, "trademarked", ...), "|"-separated.
    attribution_required: bool | None = None
    restrictions: str | None = None
    alt: str | None = None
    page_title: str | None = None
    # The etiquette its URL must be fetched with (a ``sozy.fetch.policy`` name; None: an
    # ordinary web host). Wikidata's photos are "wikimedia_media": where the URL came from
    # decides, not its host name.
    fetch_policy: str | None = None
    # The person's reference photo (their Wikidata portrait, P18): its subject's face is the
    # one consensus trusts most when it checks the person's other faces.
    reference: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class FaceRecord:
    """A face as stored: vector plus a flat, readable payload (see ``payload``)."""

    vector: np.ndarray
    image_url: str
    box: Box
    image_width: int
    image_height: int
    image_sha256: str
    faces_in_image: int
    source: str
    model: str
    page_url: str | None = None
    name: str | None = None
    # Identity: the Wikidata Q-id, else person_key(name); None for a face of nobody known.
    person_id: str | None = None
    label: str = Label.NONE.value
    # The person's reference face: the subject of their Wikidata portrait (P18).
    reference: bool = False
    license: str | None = None
    license_url: str | None = None
    attribution: str | None = None
    attribution_required: bool | None = None
    restrictions: str | None = None
    thumbnail: str | None = None
    crawled_at: str = field(default_factory=lambda: utc_now())

    @property
    def id(self) -> str:
        return point_id(self.image_sha256, self.box)

    def payload(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("vector")
        data["box"] = self.box.to_dict()
        return data

    @classmethod
    def from_payload(cls, payload: dict[str, Any], vector: np.ndarray) -> FaceRecord:
        data = {k: v for k, v in payload.items() if k in cls.__dataclass_fields__}
        data["box"] = Box.from_dict(payload["box"])
        return cls(vector=np.asarray(vector, dtype=np.float32), **data)


@dataclass(frozen=True, slots=True, eq=False)
class FaceHit:
    """A stored face near a query: its id, L2 distance and payload (and its vector, when asked for)."""

    id: str
    distance: float
    payload: dict[str, Any]
    vector: np.ndarray | None = None

    @property
    def name(self) -> str | None:
        return self.payload.get("name")

    @property
    def person_id(self) -> str | None:
        return self.payload.get("person_id") or None


@dataclass(frozen=True, slots=True)
class PersonHit:
    """One distinct person near a query, with their nearest faces (best first).

    ``person_id`` None: an unnamed face (nobody known), offered only when asked for."""

    name: str | None
    faces: list[FaceHit]
    person_id: str | None = None

    @property
    def distance(self) -> float:
        return self.faces[0].distance


def point_id(image_sha256: str, box: Box) -> str:
    """Deterministic id: the same face in the same photo always maps to one point."""
    key = f"{image_sha256}:{box.left},{box.top},{box.right},{box.bottom}"
    return str(uuid.uuid5(_POINT_NAMESPACE, key))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_KEY_SEPARATORS = re.compile(r"[\s\-_.\u2010-\u2015]+")
_QID = re.compile(r"^[Qq][1-9][0-9]*$")


def person_key(name: str) -> str:
    """The identity key of a name, so that spellings of one person meet.

    Unicode NFKC, case folded; spaces, hyphens, underscores and dots are one
    separator; surrounding punctuation dropped. A Q-id stays a Q-id
    (``q76`` → ``Q76``). ``"ROSE_LESLIE"`` and ``"rose-leslie"`` → ``"rose leslie"``.
    """
    text = unicodedata.normalize("NFKC", name).strip()
    if _QID.match(text):
        return text.upper()
    words = _KEY_SEPARATORS.sub(" ", text.casefold()).split()
    key = " ".join(words)
    start, end = 0, len(key)
    while start < end and _is_punctuation(key[start]):
        start += 1
    while end > start and _is_punctuation(key[end - 1]):
        end -= 1
    return key[start:end].strip()


def _is_punctuation(char: str) -> bool:
    return char == " " or unicodedata.category(char)[0] in "PS"
