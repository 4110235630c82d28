"""``GET /thumbnails/{id}.jpg``: the face crops the crawler wrote to ``<data_dir>/thumbnails/``."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from sozy.api.errors import ApiError
from sozy.thumbnails import thumbnail_file

Endpoint = Callable[[Request], Awaitable[Response]]

# An hour, not longer: after a takedown, caches must let the crop go soon. The ETag
# makes the revalidation after that a cheap 304.
HEADERS = {
    "Cache-Control": "public, max-age=3600",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "cross-origin",
}


def _regular_file(path: Path) -> os.stat_result | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def thumbnail_endpoint(data_dir: Path) -> Endpoint:
    async def thumbnail(request: Request) -> Response:
        # Only a canonical point id names a file: no dots, slashes or encodings get through.
        path = thumbnail_file(data_dir, str(request.path_params["id"]))
        if path is None or (found := await asyncio.to_thread(_regular_file, path)) is None:
            raise ApiError(404, "not_found", "no thumbnail has this id")
        response = FileResponse(path, media_type="image/jpeg", headers=HEADERS, stat_result=found)
        if request.headers.get("if-none-match") == response.headers["etag"]:
            return Response(status_code=304, headers={**HEADERS, "ETag": response.headers["etag"]})
        return response

    return thumbnail
