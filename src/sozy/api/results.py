"""Turn store hits into the JSON a client sees (shapes in ``sozy.api.schemas``): matches, similarity, face records."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from sozy.api import schemas
from sozy.imagetype import sniff_image_type
from sozy.records import Box, Face, FaceHit, FaceRecord, PersonHit
from sozy.thumbnails import thumbnail_id

# Steepness of the similarity curve around the same-person threshold (per unit of L2 distance).
SIMILARITY_SLOPE = 10.0


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def similarity(distance: float, threshold: float) -> float:
    """A 0–100 score that falls strictly as the L2 ``distance`` grows (see ``schemas.SIMILARITY_FORMULA``)."""
    d = max(0.0, float(distance))
    score = 100.0 * _sigmoid(SIMILARITY_SLOPE * (threshold - d)) / _sigmoid(SIMILARITY_SLOPE * threshold)
    return round(min(100.0, max(0.0, score)), 1)


def thumbnail_url(value: Any) -> str | None:
    """The stored thumbnail as something an <img> can load: an http(s) or data: URL, or
    ``/thumbnails/<id>.jpg`` (served by this API) for a crawler's ``thumbnails/<id>.jpg``."""
    if not isinstance(value, str) or not value:
        return None
    point_id = thumbnail_id(value)
    if point_id is not None:
        return f"/thumbnails/{point_id}.jpg"
    if value.startswith(("data:image/", "https://", "http://")):
        return value
    try:  # bare base64: name its type from its first bytes
        head = base64.b64decode(value[:24] + "=" * (-len(value[:24]) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    kind = sniff_image_type(head)
    return f"data:image/{kind};base64,{value}" if kind else None


def match_json(hit: FaceHit, threshold: float) -> schemas.Match:
    payload = hit.payload
    person_id = hit.person_id
    return {
        "name": payload.get("name") if person_id else None,
        "person_id": person_id,
        # A face of nobody known (only with ?unnamed=true): not a person to look like.
        "unnamed": person_id is None,
        "label": payload.get("label") or ("source" if person_id else "none"),
        "distance": round(float(hit.distance), 4),
        "similarity": similarity(hit.distance, threshold),
        "same_person": bool(hit.distance < threshold),
        "face_id": hit.id,
        "image_url": payload.get("image_url"),
        "page_url": payload.get("page_url"),
        "box": payload.get("box"),
        "thumbnail_url": thumbnail_url(payload.get("thumbnail")),
        "license": payload.get("license"),
        "license_url": payload.get("license_url"),
        "attribution": payload.get("attribution"),
        "restrictions": restriction_list(payload.get("restrictions")),
    }


def box_json(box: Box) -> schemas.Box:
    return {"left": box.left, "top": box.top, "right": box.right, "bottom": box.bottom}


def face_json(face: Face, people: list[PersonHit], threshold: float) -> schemas.Face:
    """One uploaded face: its box and its matches, people by nearest face, each person's faces by distance."""
    matches = [match_json(hit, threshold) for person in people for hit in person.faces]
    return {"box": box_json(face.box), "matches": matches}


def record_json(face_id: str, record: FaceRecord) -> schemas.StoredFace:
    """A stored face as ``GET /v1/faces/{id}`` shows it (no vector, thumbnail as a URL)."""
    payload = record.payload()
    return {
        "id": face_id,
        "name": payload.get("name"),
        "person_id": payload.get("person_id"),
        "label": payload.get("label"),
        "image_url": payload.get("image_url"),
        "page_url": payload.get("page_url"),
        "box": payload.get("box"),
        "image_width": payload.get("image_width"),
        "image_height": payload.get("image_height"),
        "faces_in_image": payload.get("faces_in_image"),
        "source": payload.get("source"),
        "license": payload.get("license"),
        "license_url": payload.get("license_url"),
        "attribution": payload.get("attribution"),
        "attribution_required": payload.get("attribution_required"),
        "restrictions": restriction_list(payload.get("restrictions")),
        "thumbnail_url": thumbnail_url(payload.get("thumbnail")),
        "crawled_at": payload.get("crawled_at"),
        "model": payload.get("model"),
    }


def restriction_list(value: object) -> list[str]:
    """The photo's restriction templates ("personality", "trademarked", ...): [] when it has none."""
    return [r for r in value.split("|") if r] if isinstance(value, str) else []
