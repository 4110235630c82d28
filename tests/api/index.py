"""The test index: every shared photo's faces as FaceRecords, except one held-out Obama photo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from sozy.config import ApiSettings
from sozy.records import FaceRecord, Label, PhotoFaces, person_key, sha256_hex

# Not stored, so searching it proves a match is found, not the same photo looked up.
# (Its nearest stored Obama photo is 0.34 away; obama.jpg and its resized copies are closer to each other.)
HELD_OUT = "obama/obama4.jpg"
LICENSE = "MIT"
LICENSE_URL = "https://opensource.org/license/mit"
ATTRIBUTION = "face_recognition test images, Adam Geitgey"
# The API's default same-person threshold (dlib's own, on the L2 distance between descriptors).
SAME_PERSON = ApiSettings().same_person_threshold


def photo_url(base_url: str, rel: str) -> str:
    return f"{base_url.rstrip('/')}/photos/{rel}"


def page_url(base_url: str, rel: str) -> str:
    return f"{base_url.rstrip('/')}/pages/{rel.rsplit('.', 1)[0]}.html"


def shared_records(
    embeddings: Mapping[str, PhotoFaces],
    people: Mapping[str, Sequence[str]],
    faces_dir: Path,
    base_url: str = "https://photos.example.org",
) -> list[FaceRecord]:
    """FaceRecords for every shared photo except ``HELD_OUT``.

    A one-person photo names its face after the manifest. A group photo's faces
    get the name of the nearest one-person face when it is the same person by
    dlib's rule (distance < 0.6), else no name: how a crawl would know them.
    """
    named: list[tuple[np.ndarray, str]] = []
    for rel, photo in embeddings.items():
        who = people[rel]
        if rel != HELD_OUT and len(who) == 1 and len(photo.faces) == 1:
            named.append((photo.faces[0].vector, who[0]))
    vectors = np.stack([v for v, _ in named])
    names = [n for _, n in named]
    records = []
    for rel, photo in sorted(embeddings.items()):
        if rel == HELD_OUT:
            continue
        sha = sha256_hex((faces_dir / rel).read_bytes())
        for face in photo.faces:
            label = Label.SOURCE
            if len(people[rel]) == 1 and len(photo.faces) == 1:
                name: str | None = people[rel][0]
            else:
                distances = np.linalg.norm(vectors - face.vector, axis=1)
                best = int(np.argmin(distances))
                name = names[best] if distances[best] < SAME_PERSON else None
                label = Label.CONSENSUS if name else Label.NONE
            records.append(
                FaceRecord(
                    vector=face.vector,
                    image_url=photo_url(base_url, rel),
                    page_url=page_url(base_url, rel),
                    box=face.box,
                    image_width=photo.width,
                    image_height=photo.height,
                    image_sha256=sha,
                    faces_in_image=len(photo.faces),
                    source="folder",
                    model=photo.model,
                    name=name,
                    person_id=person_key(name) if name else None,
                    label=label.value,
                    license=LICENSE,
                    license_url=LICENSE_URL,
                    attribution=ATTRIBUTION,
                )
            )
    return records
