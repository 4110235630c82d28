"""Stored faces: ``GET /v1/faces/{id}``, the takedown ``DELETE /v1/faces``, and ``GET /v1/stats``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sozy.api.auth import require_bearer
from sozy.api.context import ApiContext
from sozy.api.errors import ApiError
from sozy.api.results import record_json
from sozy.api.schemas import Stats, Takedown
from sozy.store.selectors import DELETE_FIELDS
from sozy.thumbnails import remove_thumbnails

Endpoint = Callable[[Request], Awaitable[Response]]
STATS_TTL_S = 10.0
# A stored face changes only by a takedown, which caches then see within a minute.
FACE_CACHE_CONTROL = "public, max-age=60"
STATS_CACHE_CONTROL = f"public, max-age={STATS_TTL_S:.0f}"


def face_endpoint(ctx: ApiContext) -> Endpoint:
    async def get_face(request: Request) -> Response:
        face_id = str(request.path_params["id"])
        if not _is_uuid(face_id):
            raise ApiError(404, "not_found", "no stored face has this id")
        store = ctx.require_store()
        started = time.perf_counter()
        try:
            record = await store.get(face_id)
        finally:
            ctx.metrics.store.labels("get").observe(time.perf_counter() - started)
        if record is None:
            raise ApiError(404, "not_found", "no stored face has this id")
        return JSONResponse(record_json(face_id, record), headers={"Cache-Control": FACE_CACHE_CONTROL})

    return get_face


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def takedown_endpoint(ctx: ApiContext) -> Endpoint:
    admin_key = ctx.settings.api.admin_key

    async def delete_faces(request: Request) -> Response:
        if not admin_key:
            # Without a configured key the route does not exist, as far as clients can tell.
            raise ApiError(404, "not_found", "not found")
        require_bearer(request, admin_key, "admin key")
        selectors = {}
        for name in DELETE_FIELDS:
            value = request.query_params.get(name)
            if value is None:
                continue
            if not value.strip():
                raise ApiError(400, "bad_parameter", f"{name} must not be empty")
            selectors[name] = value
        if not selectors:
            raise ApiError(400, "bad_parameter", f"give at least one of: {', '.join(DELETE_FIELDS)}")
        store = ctx.require_store()
        started = time.perf_counter()
        try:
            ids = await store.delete(
                image_url=selectors.get("image_url"),
                page_url=selectors.get("page_url"),
                name=selectors.get("name"),
                source=selectors.get("source"),
                person_id=selectors.get("person_id"),
            )
        finally:
            ctx.metrics.store.labels("delete").observe(time.perf_counter() - started)
        ctx.stats_cache = None
        await asyncio.to_thread(remove_thumbnails, ctx.settings.data_path, ids)
        body: Takedown = {"deleted": len(ids)}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    return delete_faces


def stats_endpoint(ctx: ApiContext) -> Endpoint:
    async def stats(request: Request) -> Response:
        now = time.monotonic()
        if ctx.stats_cache is not None and now - ctx.stats_cache[0] < STATS_TTL_S:
            return JSONResponse(ctx.stats_cache[1], headers={"Cache-Control": STATS_CACHE_CONTROL})
        store = ctx.require_store()
        engine = ctx.require_engine()
        started = time.perf_counter()
        try:
            store_stats = await store.stats()
        finally:
            ctx.metrics.store.labels("stats").observe(time.perf_counter() - started)
        raw = asdict(store_stats)
        body: Stats = {
            "faces": int(raw["faces"]),
            "people": int(raw["people"]),
            "model": engine.model_id,
            "store_models": list(raw.get("models") or []),
            "backend": raw["backend"],
            "collection": raw.get("collection"),
            "engine": {"workers": int(engine.workers), "device": str(engine.device)},
        }
        ctx.stats_cache = (now, body)
        return JSONResponse(body, headers={"Cache-Control": STATS_CACHE_CONTROL})

    return stats
