"""Liveness (``/healthz``) and readiness (``/readyz``): is the process up, can it search?"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from functools import cache

from PIL import Image
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sozy.api.context import ApiContext
from sozy.api.schemas import Health, Ready

Endpoint = Callable[[Request], Awaitable[Response]]
# A probe result is reused this long, so frequent probes add no load.
READY_TTL_S = 5.0
PROBE_TIMEOUT_S = 10.0


async def healthz(request: Request) -> Response:
    body: Health = {"status": "ok"}
    return JSONResponse(body)


@cache
def probe_photo() -> bytes:
    """A tiny blank PNG: a round trip through an engine worker that finds no face."""
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(out, format="PNG")
    return out.getvalue()


def readyz_endpoint(ctx: ApiContext) -> Endpoint:
    async def readyz(request: Request) -> Response:
        now = time.monotonic()
        if ctx.ready_cache is None or now - ctx.ready_cache[0] >= READY_TTL_S:
            ctx.ready_cache = (now, await _check(ctx))
        body = ctx.ready_cache[1]
        ready = all(v == "ok" for v in body["checks"].values())
        return JSONResponse(body, status_code=200 if ready else 503, headers=None if ready else {"Retry-After": "5"})

    return readyz


async def _check(ctx: ApiContext) -> Ready:
    checks = {"engine": await _check_engine(ctx), "store": await _check_store(ctx)}
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not_ready", "checks": checks}


async def _check_engine(ctx: ApiContext) -> str:
    if ctx.engine is None:
        return "not started"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await ctx.engine.embed(probe_photo())
    except TimeoutError:
        return "timed out"
    except Exception as exc:  # any failure means "not ready"; the reason is reported, not raised
        return f"failed: {type(exc).__name__}"
    return "ok"


async def _check_store(ctx: ApiContext) -> str:
    if ctx.store is None:
        return "not open"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            await ctx.store.count()
    except TimeoutError:
        return "timed out"
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"
