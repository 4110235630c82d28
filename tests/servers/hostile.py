"""A hostile image host on 127.0.0.1, for tests of anything that fetches.

It serves the real photos from examples/faces and every way a host can
misbehave, and logs every request (path, User-Agent, concurrency) so tests can
assert retries, robots.txt fetches and User-Agent rotation.

    async with HostileServer(faces_dir) as host:
        url = host.url("/photo/obama/obama.jpg")
        ...
        assert host.log.count("/robots.txt") == 1

Routes (``?delay=S`` on any route waits S seconds before answering):

==========================  ===================================================
/robots.txt                 ``robots_txt`` (SozyBot may not fetch /private/),
                            or ``robots_status`` / ``robots_delay`` if set
/photo/<path>               a real photo; ``?chunked=1`` (no Content-Length),
                            ``?type=`` (Content-Type), ``?xrt=`` (X-Robots-Tag,
                            repeatable)
/private/<path>             the same photos, disallowed by robots.txt
/hang                       accepts the request and never answers
/drip?every=S               a JPEG start, then one byte every S seconds, forever
/endless                    a JPEG start, then zeros without end (chunked)
/status/<code>              that status, with a small body
/flaky/<key>?fail=N&status= the status (503) N times per key, then a photo
/limited/<key>?fail=N&after=S&form=seconds|date
                            429 with Retry-After N times per key, then a photo
/loop/a, /loop/b            redirect to each other
/chain/<n>                  n redirects, then a photo
/redirect?to=URL            one redirect to URL (e.g. another host)
/wrong-type.jpg             a real JPEG sent as text/html
/html-as-jpeg.jpg           an HTML page sent as image/jpeg
/truncated.jpg              the first half of a JPEG (consistent Content-Length)
/cut-off.jpg                Content-Length of the whole JPEG, half sent, closed
/bomb.png                   a 400-byte PNG declaring 100,000 x 100,000 pixels
/noai.jpg                   a real JPEG with ``X-Robots-Tag: noai``
/page.html                  an HTML page with images, og:image and links
/api/echo                   JSON: query, User-Agent, Accept
/api/text                   text/plain in ISO-8859-1
/api/not-json               200 with a body that is not JSON
==========================  ===================================================
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType

from aiohttp import web

DEFAULT_ROBOTS_TXT = """\
User-agent: SozyBot
Disallow: /private/

User-agent: *
Disallow: /nobody/
"""

DEFAULT_PHOTO = "obama/obama.jpg"
_CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".gif": "image/gif"}
_JPEG_START = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


@dataclass(frozen=True)
class LoggedRequest:
    path: str
    query: str
    user_agent: str
    headers: dict[str, str]
    at: float


@dataclass
class RequestLog:
    """Every request the server saw, and how many it handled at once."""

    requests: list[LoggedRequest] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def count(self, path: str) -> int:
        """Requests for exactly ``path`` (without query)."""
        return sum(1 for r in self.requests if r.path == path)

    def counts(self) -> Counter[str]:
        return Counter(r.path for r in self.requests)

    def user_agents(self, prefix: str = "/") -> list[str]:
        """User-Agent of each request whose path starts with ``prefix``, in order."""
        return [r.user_agent for r in self.requests if r.path.startswith(prefix)]

    def times(self, path: str) -> list[float]:
        """Monotonic arrival times of requests for ``path``."""
        return [r.at for r in self.requests if r.path == path]

    def reset(self) -> None:
        self.requests.clear()
        self.max_in_flight = self.in_flight


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny, well-formed PNG header declaring a huge image (decoders must refuse it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = zlib.compress(b"\x00" * (width + 1) * 2, 9)  # two rows of the 100,000
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


class HostileServer:
    """The server as an async context manager; ``base_url`` once entered."""

    def __init__(
        self,
        faces_dir: Path,
        *,
        robots_txt: str = DEFAULT_ROBOTS_TXT,
        host: str = "127.0.0.1",
        log: RequestLog | None = None,
    ) -> None:
        self.faces_dir = Path(faces_dir)
        self.robots_txt = robots_txt
        # Set to answer robots.txt with this status instead (404, 500, ...).
        self.robots_status: int | None = None
        self.robots_delay = 0.0
        # Pass one RequestLog to several servers to see their combined concurrency.
        self.log = log if log is not None else RequestLog()
        self._host = host
        self._runner: web.AppRunner | None = None
        self._failures: Counter[str] = Counter()
        self._files: dict[str, bytes] = {}
        self.base_url = ""

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        # handler_cancellation: a handler stops when its client goes away, so
        # /hang and /endless do not outlive the test.
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://{self._host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def photo_bytes(self, rel: str = DEFAULT_PHOTO) -> bytes:
        if rel not in self._files:
            path = (self.faces_dir / rel).resolve()
            if self.faces_dir.resolve() not in path.parents:
                raise web.HTTPNotFound()
            self._files[rel] = path.read_bytes()
        return self._files[rel]

    # -- app ----------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._track])
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/photo/{rel:.+}", self._photo)
        app.router.add_get("/private/{rel:.+}", self._photo)
        app.router.add_get("/nobody/{rel:.+}", self._photo)
        app.router.add_get("/hang", self._hang)
        app.router.add_get("/drip", self._drip)
        app.router.add_get("/endless", self._endless)
        app.router.add_get("/status/{code:\\d+}", self._status)
        app.router.add_get("/flaky/{key}", self._flaky)
        app.router.add_get("/limited/{key}", self._limited)
        app.router.add_get("/loop/{side}", self._loop)
        app.router.add_get("/chain/{n:\\d+}", self._chain)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/wrong-type.jpg", self._wrong_type)
        app.router.add_get("/html-as-jpeg.jpg", self._html_as_jpeg)
        app.router.add_get("/truncated.jpg", self._truncated)
        app.router.add_get("/cut-off.jpg", self._cut_off)
        app.router.add_get("/bomb.png", self._bomb)
        app.router.add_get("/noai.jpg", self._noai)
        app.router.add_get("/page.html", self._page)
        app.router.add_get("/api/echo", self._api_echo)
        app.router.add_get("/api/text", self._api_text)
        app.router.add_get("/api/not-json", self._api_not_json)
        return app

    @web.middleware
    async def _track(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        log = self.log
        log.requests.append(
            LoggedRequest(
                path=request.path,
                query=request.query_string,
                user_agent=request.headers.get("User-Agent", ""),
                headers=dict(request.headers),
                at=time.monotonic(),
            )
        )
        log.in_flight += 1
        log.max_in_flight = max(log.max_in_flight, log.in_flight)
        try:
            delay = float(request.query.get("delay", 0))
            if delay:
                await asyncio.sleep(delay)
            return await handler(request)
        finally:
            log.in_flight -= 1

    async def _robots(self, request: web.Request) -> web.Response:
        if self.robots_delay:
            await asyncio.sleep(self.robots_delay)
        if self.robots_status is not None:
            return web.Response(status=self.robots_status, text="robots.txt unavailable")
        return web.Response(text=self.robots_txt, content_type="text/plain")

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["rel"]
        try:
            data = self.photo_bytes(rel)
        except OSError:
            raise web.HTTPNotFound() from None
        content_type = request.query.get("type") or _CONTENT_TYPES.get(Path(rel).suffix.lower(), "image/jpeg")
        if request.query.get("chunked"):
            response = web.StreamResponse(headers={"Content-Type": content_type})
            for value in request.query.getall("xrt", []):
                response.headers.add("X-Robots-Tag", value)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for start in range(0, len(data), 8192):
                await response.write(data[start : start + 8192])
            await response.write_eof()
            return response
        response = web.Response(body=data, headers={"Content-Type": content_type})
        for value in request.query.getall("xrt", []):
            response.headers.add("X-Robots-Tag", value)
        return response

    async def _hang(self, request: web.Request) -> web.Response:
        await asyncio.Event().wait()  # cancelled when the client gives up
        raise AssertionError("unreachable")

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        every = float(request.query.get("every", 0.1))
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(_JPEG_START)
        while True:
            await asyncio.sleep(every)
            await response.write(b"\x00")

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(_JPEG_START)
        block = bytes(64 * 1024)
        for _ in range(16 * 1024):  # 1 GiB: "endless" for any cap, yet bounded
            await response.write(block)
        await response.write_eof()
        return response

    async def _status(self, request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def _flaky(self, request: web.Request) -> web.Response:
        key = "flaky:" + request.match_info["key"]
        if self._failures[key] < int(request.query.get("fail", 1)):
            self._failures[key] += 1
            status = int(request.query.get("status", 503))
            return web.Response(status=status, text="try again later")
        return web.Response(body=self.photo_bytes(), content_type="image/jpeg")

    async def _limited(self, request: web.Request) -> web.Response:
        key = "limited:" + request.match_info["key"]
        if self._failures[key] < int(request.query.get("fail", 1)):
            self._failures[key] += 1
            after = float(request.query.get("after", 1))
            if request.query.get("form") == "date":
                when = datetime.now(UTC) + timedelta(seconds=after)
                retry_after = format_datetime(when, usegmt=True)
            else:
                retry_after = str(int(after))
            return web.Response(status=429, text="slow down", headers={"Retry-After": retry_after})
        return web.Response(body=self.photo_bytes(), content_type="image/jpeg")

    async def _loop(self, request: web.Request) -> web.Response:
        other = "b" if request.match_info["side"] == "a" else "a"
        raise web.HTTPFound(f"/loop/{other}")

    async def _chain(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n > 0:
            raise web.HTTPMovedPermanently(f"/chain/{n - 1}")
        return web.Response(body=self.photo_bytes(), content_type="image/jpeg")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _wrong_type(self, request: web.Request) -> web.Response:
        return web.Response(body=self.photo_bytes(), content_type="text/html")

    async def _html_as_jpeg(self, request: web.Request) -> web.Response:
        html = b"<!doctype html><html><body><h1>Not an image</h1></body></html>"
        return web.Response(body=html, content_type="image/jpeg")

    async def _truncated(self, request: web.Request) -> web.Response:
        data = self.photo_bytes()
        return web.Response(body=data[: len(data) // 2], content_type="image/jpeg")

    async def _cut_off(self, request: web.Request) -> web.StreamResponse:
        data = self.photo_bytes()
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.content_length = len(data)
        await response.prepare(request)
        await response.write(data[: len(data) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    async def _bomb(self, request: web.Request) -> web.Response:
        return web.Response(body=bomb_png(), content_type="image/png")

    async def _noai(self, request: web.Request) -> web.Response:
        return web.Response(body=self.photo_bytes(), content_type="image/jpeg", headers={"X-Robots-Tag": "noai"})

    async def _page(self, request: web.Request) -> web.Response:
        html = f"""<!doctype html>
<html><head><title>Barack Obama</title>
<meta property="og:image" content="/photo/{DEFAULT_PHOTO}"></head>
<body>
<img src="/photo/obama/obama2.jpg" alt="Barack Obama">
<img src="/photo/biden/biden.jpg" alt="Joe Biden">
<a href="/page.html">this page</a>
</body></html>"""
        return web.Response(text=html, content_type="text/html")

    async def _api_echo(self, request: web.Request) -> web.Response:
        body = {
            "query": dict(request.query),
            "user_agent": request.headers.get("User-Agent", ""),
            "accept": request.headers.get("Accept", ""),
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def _api_text(self, request: web.Request) -> web.Response:
        body = "café crème".encode("iso-8859-1")
        return web.Response(body=body, headers={"Content-Type": "text/plain; charset=ISO-8859-1"})

    async def _api_not_json(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="application/json")
