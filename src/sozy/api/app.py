"""The Starlette application: routes, middleware, and the lifespan that owns engine and store."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sozy.api import faces, health, pages, search, thumbnails
from sozy.api.accesslog import AccessLog
from sozy.api.admission import engine_gate, upload_gate
from sozy.api.context import ApiContext
from sozy.api.errors import exception_handlers
from sozy.api.framing import FramingGuard
from sozy.api.metrics import MetricsMiddleware
from sozy.api.openapi import openapi_schema
from sozy.api.ratelimit import Endpoint, RateLimiter, rate_limited
from sozy.api.remote import AddressPolicy, RemoteImages
from sozy.config import Settings

if TYPE_CHECKING:
    from sozy.faces.engine import FaceEngine
    from sozy.store.base import FaceStore

log = logging.getLogger("sozy.api")


def create_app(
    settings: Settings,
    *,
    engine: FaceEngine | None = None,
    store: FaceStore | None = None,
    remote: RemoteImages | None = None,
) -> Starlette:
    """Build the app. Engine and store are opened by its lifespan unless given.

    What is given is used as is and left open at shutdown (its owner closes it);
    what the app opens itself, it closes. ``remote`` replaces the image_url
    fetcher (tests use it to plug in a resolver).
    """
    api = settings.api
    ctx = ApiContext(
        settings=settings,
        gate=engine_gate(api.queue_limit, workers=max(1, settings.engine.workers)),
        uploads=upload_gate(api.max_uploads),
        limiter=RateLimiter(api.rate_limit_per_minute),
        remote=remote
        or RemoteImages(
            max_bytes=api.max_upload_bytes,
            timeout_s=api.fetch_timeout_s,
            policy=AddressPolicy(allow_private=api.allow_private_urls),
            per_client=api.fetches_per_client,
        ),
        engine=engine,
        store=store,
    )
    schema = openapi_schema(settings)

    async def openapi(request: Request) -> Response:
        return JSONResponse(schema)

    def limited(endpoint: Endpoint) -> Endpoint:
        return rate_limited(ctx.limiter, endpoint)

    routes = [
        Route("/", pages.index, methods=["GET"]),
        Route("/docs", pages.docs, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz_endpoint(ctx), methods=["GET"]),
        Route("/metrics", ctx.metrics.endpoint(api.metrics_key), methods=["GET"]),
        Route("/v1/search", limited(search.search_endpoint(ctx)), methods=["POST"]),
        Route("/v1/stats", limited(faces.stats_endpoint(ctx)), methods=["GET"]),
        Route("/v1/faces/{id}", limited(faces.face_endpoint(ctx)), methods=["GET"]),
        Route("/v1/faces", limited(faces.takedown_endpoint(ctx)), methods=["DELETE"]),
        # Not rate limited: one results page loads a crop per match.
        Route("/thumbnails/{id}.jpg", thumbnails.thumbnail_endpoint(settings.data_path), methods=["GET"]),
        Mount("/static", app=pages.Static(), name="static"),
    ]
    middleware = [
        Middleware(FramingGuard, max_header_bytes=api.max_header_bytes),
        Middleware(AccessLog),
        Middleware(MetricsMiddleware, metrics=ctx.metrics),
    ]
    if api.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(api.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
                expose_headers=["Retry-After"],
                max_age=600,
            )
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if ctx.engine is None:
                ctx.engine = await _open_engine(settings, stack)
            if ctx.store is None:
                ctx.store = await _open_store(settings, stack)
            ctx.gate.servers = max(1, int(getattr(ctx.engine, "workers", 1) or 1))
            await ctx.remote.start()
            stack.push_async_callback(ctx.remote.close)
            log.info(
                "search API ready: engine %s × %s (%s), store %s",
                ctx.engine.workers,
                ctx.engine.device,
                ctx.engine.model_id,
                ctx.store.backend,
            )
            yield
        if engine is None:
            ctx.engine = None
        if store is None:
            ctx.store = None

    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


async def _open_engine(settings: Settings, stack: contextlib.AsyncExitStack) -> FaceEngine:
    from sozy.faces.engine import FaceEngine

    engine = FaceEngine(settings.engine)
    await engine.start()
    stack.push_async_callback(engine.close)
    return engine


async def _open_store(settings: Settings, stack: contextlib.AsyncExitStack) -> FaceStore:
    from sozy.store import open_store

    store = await open_store(settings)
    stack.push_async_callback(store.close)
    old = (await store.stats()).without_identity
    if old:
        # Only named people are offered: these faces would be left out of every answer.
        log.warning(
            "%d faces were stored before identities and are not offered as anyone until "
            "`python -m sozy.store relabel` gives them their person_id",
            old,
        )
    return store
