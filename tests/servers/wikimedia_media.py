"""The fake upload.wikimedia.org: the media host Commons' answers point to, on its own port.

Serves the real test photos as originals and as thumbnails at Wikimedia's
standard widths only (a request between two steps gets the next one up; a
thumbnail as wide as the original or wider is an error: Commons does not
upscale), behind its own robots.txt and the agent rules Wikimedia applies
to bots: no User-Agent, or a library's bare default one, is refused with 403.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from aiohttp import web
from aiohttp.test_utils import TestServer

from .celebrity import Photo, PhotoRenderer, read_manifest
from .wikimedia_json import file_title
from .wikimedia_traffic import Traffic
from .wikimedia_world import FILES, FakeFile, thumb_step

UPLOAD_PREFIX = "/wikipedia/commons"
# Agents Wikimedia blocks outright (its User-Agent policy names python-requests' default).
_GENERIC_AGENTS = re.compile(
    r"^(python-requests|python-urllib|aiohttp|python-httpx|curl|wget|lwp|java)\b", re.IGNORECASE
)
REFUSED_AGENT = (
    "Please set a user-agent and respect our robot policy https://w.wiki/4wJS. "
    "See also https://phabricator.wikimedia.org/T400119."
)


def refuses_agent(agent: str) -> bool:
    """Whether Wikimedia's edge would refuse this User-Agent (none, or a library's default)."""
    return not agent.strip() or bool(_GENERIC_AGENTS.match(agent.strip()))


class MediaHost:
    """Originals and standard-width thumbnails of the fake Commons files."""

    def __init__(self, faces_dir: Path, traffic: Traffic) -> None:
        self.traffic = traffic
        self.files = {f.title: f for f in FILES}
        self.renderer = PhotoRenderer(Path(faces_dir))
        self.photos = {p.path: p for p in read_manifest(Path(faces_dir))}
        self.robots_txt = "User-agent: *\nAllow: /\n"
        self.retry_after = 1
        self._throttled = 0
        self._server: TestServer | None = None

    def throttle(self, answers: int, retry_after: int = 1) -> None:
        """The next ``answers`` downloads get 429 Too Many Requests with ``Retry-After``."""
        self._throttled, self.retry_after = answers, retry_after

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("media host not started")
        return f"http://127.0.0.1:{self._server.port}"

    def width_of(self, f: FakeFile) -> tuple[int, int]:
        photo = self.photos.get(f.photo) if f.photo else None
        return (photo.width, photo.height) if photo else (512, 512)

    def original_url(self, f: FakeFile) -> str:
        h = hashlib.md5(f.key.encode()).hexdigest()
        return f"{self.base_url}{UPLOAD_PREFIX}/{h[0]}/{h[:2]}/{quote(f.key)}"

    def thumb_url(self, f: FakeFile, width: int) -> str:
        """What imageinfo gives for ``iiurlwidth=width``: the next standard width, or the original
        when that is not narrower than the original (vector files are always rendered)."""
        step = thumb_step(width)
        if f.photo is not None and self.width_of(f)[0] <= step:
            return self.original_url(f)
        h = hashlib.md5(f.key.encode()).hexdigest()
        thumb_name = f.key + (".png" if f.mime_type == "image/svg+xml" else "")
        return f"{self.base_url}{UPLOAD_PREFIX}/thumb/{h[0]}/{h[:2]}/{quote(f.key)}/{step}px-{quote(thumb_name)}"

    def photo_of(self, url: str) -> Photo | None:
        """The manifest photo behind a thumbnail or original URL this host gave out."""
        path = urlsplit(url).path
        if not path.startswith(UPLOAD_PREFIX + "/"):
            return None
        parts = path[len(UPLOAD_PREFIX) + 1 :].split("/")
        key = parts[3] if parts[0] == "thumb" and len(parts) == 5 else parts[-1]
        found = self.files.get(file_title(unquote(key)))
        return self.photos.get(found.photo) if found is not None and found.photo else None

    async def start(self) -> None:
        app = web.Application(middlewares=[self.traffic.middleware(lambda _: "upload")])
        app.router.add_get(UPLOAD_PREFIX + "/thumb/{a}/{ab}/{name}/{thumb}", self._thumb)
        app.router.add_get(UPLOAD_PREFIX + "/{a}/{ab}/{name}", self._original)
        app.router.add_get("/robots.txt", self._robots)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    async def _robots(self, request: web.Request) -> web.Response:
        return web.Response(text=self.robots_txt)

    def _check_agent(self, request: web.Request) -> None:
        if refuses_agent(request.headers.get("User-Agent", "")):
            raise web.HTTPForbidden(text=REFUSED_AGENT)
        if self._throttled:
            self._throttled -= 1
            raise web.HTTPTooManyRequests(text="Too many requests", headers={"Retry-After": str(self.retry_after)})

    async def _original(self, request: web.Request) -> web.Response:
        self._check_agent(request)
        f = self.files.get(file_title(request.match_info["name"]))
        if f is None or f.photo is None:
            raise web.HTTPNotFound()
        body, mime = await self.renderer.render(f.photo, None)
        return web.Response(body=body, content_type=mime)

    async def _thumb(self, request: web.Request) -> web.Response:
        self._check_agent(request)
        f = self.files.get(file_title(request.match_info["name"]))
        match = re.fullmatch(r"(\d+)px-(.+)", request.match_info["thumb"])
        if f is None or f.photo is None or match is None:
            raise web.HTTPNotFound()
        width = thumb_step(int(match.group(1)))
        if width >= self.width_of(f)[0]:
            # Commons does not upscale.
            return web.Response(status=400, text="Error generating thumbnail: larger than the original")
        body, mime = await self.renderer.render(f.photo, width)
        return web.Response(body=body, content_type=mime)
