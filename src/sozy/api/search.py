"""``POST /v1/search``: a photo in, the nearest distinct people for each face in it out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sozy.api.body import BodyTimeouts, read_search_input
from sozy.api.context import ApiContext
from sozy.api.errors import ApiError
from sozy.api.results import face_json
from sozy.api.schemas import SearchResult
from sozy.faces.errors import EmptyImage, EngineClosed, ImageError, ImageTooLarge, TaskFailed
from sozy.records import Face, PersonHit, PhotoFaces

if TYPE_CHECKING:
    from sozy.faces.engine import FaceEngine
    from sozy.store.base import FaceStore

DEFAULT_K = 5
MAX_K = 50
DEFAULT_PER_PERSON = 1
MAX_PER_PERSON = 10
# Faces of one uploaded photo that are searched (largest first); a crowd photo stops here.
MAX_FACES = 20
FACE_MODES = ("all", "largest")
BOOLEANS = ("true", "false")


@dataclass(frozen=True, slots=True)
class SearchParams:
    k: int = DEFAULT_K
    per_person: int = DEFAULT_PER_PERSON
    faces: str = "all"
    # Offer faces of nobody known too (each its own "person", marked unnamed).
    unnamed: bool = False

    @property
    def max_faces(self) -> int:
        """Faces of the photo described and searched, largest first."""
        return 1 if self.faces == "largest" else MAX_FACES

    @classmethod
    def from_query(cls, query: QueryParams) -> SearchParams:
        return cls(
            k=_int_param(query, "k", DEFAULT_K, 1, MAX_K),
            per_person=_int_param(query, "per_person", DEFAULT_PER_PERSON, 1, MAX_PER_PERSON),
            faces=_choice_param(query, "faces", "all", FACE_MODES),
            unnamed=_choice_param(query, "unnamed", "false", BOOLEANS) == "true",
        )


def _int_param(query: QueryParams, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    # ASCII only: str.isdigit() also accepts "²" (which int() refuses) and other scripts' digits.
    if not (text.isascii() and text.isdigit()) or len(text) > 6 or not low <= int(text) <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be a whole number from {low} to {high}")
    return int(text)


def _choice_param(query: QueryParams, name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = query.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise ApiError(400, "bad_parameter", f"{name} must be one of: {', '.join(choices)}")
    return raw


def image_error(exc: ImageError) -> ApiError:
    """The engine's verdict on a bad photo, as the status a client should see."""
    if isinstance(exc, EmptyImage):
        return ApiError(400, exc.code, "the photo is empty (0 bytes)")
    if isinstance(exc, ImageTooLarge):
        return ApiError(413, exc.code, f"the photo has too many pixels: {exc}")
    return ApiError(415, exc.code, f"not a usable photo (JPEG, PNG, WebP, GIF or BMP): {exc}")


def search_endpoint(ctx: ApiContext) -> Callable[[Request], Awaitable[Response]]:
    api = ctx.settings.api

    async def search(request: Request) -> Response:
        started = time.perf_counter()
        params = SearchParams.from_query(request.query_params)
        engine = ctx.require_engine()
        store = ctx.require_store()
        client = request.client.host if request.client else "unknown"
        # The engine slot is reserved before a byte of the body is read, and uploads being
        # read are bounded on their own: a refusal costs neither memory nor a worker.
        with ctx.gate.slot():
            image = await _receive(ctx, request, client)
            photo = await _embed(ctx, engine, image, params.max_faces)
        del image  # the photo's bytes are not needed (nor kept) past this point
        faces = photo.faces[: params.max_faces]
        if not faces:
            raise ApiError(422, "no_face", "no face was found in the photo")
        people = await asyncio.gather(*(_nearest(ctx, store, face, params) for face in faces))
        body: SearchResult = {
            "faces": [
                face_json(face, hits, api.same_person_threshold) for face, hits in zip(faces, people, strict=True)
            ],
            "took_ms": round((time.perf_counter() - started) * 1000.0, 1),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return search


async def _receive(ctx: ApiContext, request: Request, client: str) -> bytes:
    """The photo's bytes: the body, read under an upload slot, or what image_url points to."""
    api = ctx.settings.api
    with ctx.uploads.slot():
        read_started = time.perf_counter()
        source = await read_search_input(
            request, api.max_upload_bytes, BodyTimeouts(total_s=api.body_timeout_s, idle_s=api.body_idle_timeout_s)
        )
        ctx.uploads.observe(time.perf_counter() - read_started)
    image = source.image
    if source.image_url is not None:
        fetch_started = time.perf_counter()
        try:
            image = await ctx.remote.fetch(source.image_url, client)
        finally:
            ctx.metrics.fetch.observe(time.perf_counter() - fetch_started)
    if not image:
        raise ApiError(400, "empty_image", "the photo is empty (0 bytes)")
    return image


async def _embed(ctx: ApiContext, engine: FaceEngine, image: bytes, max_faces: int) -> PhotoFaces:
    position = engine.in_flight + 1  # where this photo joins the engine's queue
    started = time.perf_counter()
    try:
        return await engine.embed(image, max_faces=max_faces)
    except ImageError as exc:
        raise image_error(exc) from None
    except (TaskFailed, EngineClosed) as exc:
        raise ApiError(
            503, exc.code, "the face engine could not process the photo right now; try again", {"Retry-After": "5"}
        ) from None
    finally:
        elapsed = time.perf_counter() - started
        ctx.gate.observe(elapsed, position)
        ctx.metrics.embed.observe(elapsed)


async def _nearest(ctx: ApiContext, store: FaceStore, face: Face, params: SearchParams) -> list[PersonHit]:
    started = time.perf_counter()
    try:
        return await store.search_people(face.vector, k=params.k, per_person=params.per_person, unnamed=params.unnamed)
    finally:
        ctx.metrics.store.labels("search_people").observe(time.perf_counter() - started)
