"""Local aiohttp servers for the API tests (127.0.0.1, ephemeral ports).

``PhotoServer`` serves the shared photos and simple pages, redirects on
request, and records every request it receives, so a test can prove that a
refused image_url was never fetched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import TracebackType

from aiohttp import web


class PhotoServer:
    """``/photos/<rel>`` shared photos, ``/pages/<rel>.html`` a page, ``/redirect?to=URL`` a 302,
    ``/big`` an endless body, ``/slow`` a response that never comes, ``/text`` not an image."""

    def __init__(self, faces_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.faces_dir = faces_dir
        self.host = host
        self.hits: list[str] = []
        # Answer with "Connection: close", so every request needs a new connection.
        self.close_connections = False
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> PhotoServer:
        app = web.Application()
        app.router.add_get("/photos/{rel:.+}", self._photo)
        app.router.add_get("/pages/{rel:.+}", self._page)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/big", self._big)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/text", self._text)
        app.middlewares.append(self._record)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.hits.append(request.path_qs)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if self.close_connections:
                exc.force_close()
            raise
        if self.close_connections:
            response.force_close()
        return response

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["rel"]
        path = (self.faces_dir / rel).resolve()
        if self.faces_dir.resolve() not in path.parents or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Access-Control-Allow-Origin": "*"})

    async def _page(self, request: web.Request) -> web.Response:
        rel = request.match_info["rel"]
        return web.Response(text=f"<html><body><h1>{rel}</h1></body></html>", content_type="text/html")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(location=request.query["to"])

    async def _big(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        await response.prepare(request)
        chunk = b"\xff\xd8\xff" + b"\0" * (64 * 1024 - 3)
        try:
            for _ in range(10_000):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=b"late")

    async def _text(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>not a photo</html>", content_type="text/html")
