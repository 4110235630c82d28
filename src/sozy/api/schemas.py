"""The API's JSON, described once: what each route answers and what a search accepts.

The handlers build their answers as these types (plain dicts at run time, so a
search pays nothing for them; mypy checks every field a builder writes), and
``/openapi.json`` generates its components from them (``sozy.api.openapi``).
A field added, renamed or retyped here changes both; schemathesis checks that
the live server's answers still match.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, with_config

# pydantic needs typing_extensions' TypedDict before Python 3.12 (it reads its field metadata).
from typing_extensions import TypedDict

SIMILARITY_FORMULA = (
    "similarity = 100 × σ(10 × (t − d)) / σ(10 × t), where d is the L2 distance between the two "
    "128-d face descriptors, t is api.same_person_threshold (0.6 by default) and σ(x) = 1 / (1 + e^−x). "
    "It is 100 for identical descriptors, about 50 at the same-person threshold, and falls towards 0 "
    "as faces differ more; it decreases strictly as the distance grows."
)


class ErrorDetail(TypedDict):
    code: Annotated[str, Field(description="Short stable code, e.g. no_face, too_large.")]
    message: Annotated[str, Field(description="What went wrong, for people.")]


class Error(TypedDict):
    """Every error a client sees."""

    error: ErrorDetail


class Box(TypedDict):
    """A face box in the photo's pixels; right and bottom are exclusive."""

    left: int
    top: int
    right: int
    bottom: int


class Match(TypedDict):
    """A stored face near an uploaded one, with its person and where its photo came from."""

    name: Annotated[str | None, Field(description="Who this is; null for an unnamed face.")]
    person_id: Annotated[
        str | None,
        Field(
            description="The person's identity: a Wikidata Q-id, else the key of their name "
            "(case folded, separators alike). Null for an unnamed face."
        ),
    ]
    unnamed: Annotated[
        bool, Field(description="A face of nobody known (only with unnamed=true): not a person to look like.")
    ]
    label: Annotated[
        Literal["source", "consensus", "none"],
        Field(
            description="Why the face carries its person: the source named it, it matched the "
            "person's other faces (consensus), or nobody (none)."
        ),
    ]
    distance: Annotated[float, Field(ge=0, description="L2 distance between the descriptors.")]
    similarity: Annotated[float, Field(ge=0, le=100, description=SIMILARITY_FORMULA)]
    # openapi.py adds the threshold the server runs with.
    same_person: Annotated[bool, Field(description="distance < api.same_person_threshold")]
    face_id: Annotated[str, Field(description="The stored face's id, for GET /v1/faces/{id}.")]
    image_url: Annotated[str | None, Field(description="The photo the face is in.")]
    page_url: Annotated[str | None, Field(description="The page the photo was found on.")]
    box: Box | None
    thumbnail_url: Annotated[
        str | None,
        Field(description="A small crop of the face, if stored: /thumbnails/<id>.jpg on this API, or a URL."),
    ]
    license: Annotated[str | None, Field(description="The photo's licence (short name).")]
    license_url: Annotated[str | None, Field(description="Where the licence's text is.")]
    attribution: Annotated[str | None, Field(description="The photo's author or credit line.")]
    restrictions: Annotated[
        list[str],
        Field(
            description="The photo's restriction templates on Commons, e.g. personality (personality "
            "rights: the person's consent may be needed for uses beyond this one), trademarked."
        ),
    ]


class Face(TypedDict):
    """One face of the uploaded photo and the people who look most like it."""

    box: Box
    matches: list[Match]


class SearchResult(TypedDict):
    """The answer to POST /v1/search."""

    faces: Annotated[list[Face], Field(description="One entry per face found in the photo, largest first.")]
    took_ms: Annotated[float, Field(ge=0)]


class StoredFace(TypedDict):
    """A stored face as GET /v1/faces/{id} shows it: its payload without the vector."""

    id: str
    name: str | None
    person_id: str | None
    label: Annotated[str | None, Field(description="source, consensus or none (see Match).")]
    image_url: str | None
    page_url: str | None
    box: Box | None
    image_width: int | None
    image_height: int | None
    faces_in_image: int | None
    source: str | None
    license: str | None
    license_url: str | None
    attribution: str | None
    attribution_required: Annotated[bool | None, Field(description="Whether the licence asks for the author's credit.")]
    restrictions: list[str]
    thumbnail_url: str | None
    crawled_at: str | None
    model: str | None


class EngineInfo(TypedDict):
    workers: int
    device: str


class Stats(TypedDict):
    """What GET /v1/stats says about the index."""

    faces: Annotated[int, Field(ge=0)]
    people: Annotated[int, Field(ge=0)]
    model: Annotated[str, Field(description="The engine's model id (detector + encoder).")]
    store_models: list[str]
    backend: Literal["embedded", "server"]
    collection: str | None
    engine: EngineInfo


class Takedown(TypedDict):
    deleted: Annotated[int, Field(ge=0)]


class Health(TypedDict):
    status: str


class Ready(TypedDict):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


# What a search accepts as a JSON body (exactly one of the two) or as multipart/form-data.


@with_config(extra="forbid")
class Base64Image(TypedDict):
    image_base64: Annotated[str, Field(json_schema_extra={"format": "byte"})]


@with_config(extra="forbid")
class UrlImage(TypedDict):
    image_url: Annotated[str, Field(json_schema_extra={"format": "uri"})]


class ImageUpload(TypedDict):
    image: bytes


RESPONSES = (Error, SearchResult, StoredFace, Stats, Takedown, Health, Ready)
REQUESTS = (Base64Image, UrlImage, ImageUpload)
