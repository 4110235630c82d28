"""A loopback image host serving the real sample photos, counting requests in flight.

``/p/<n>.<ext>`` is the n-th photo of the manifest; ``url_list`` writes a CSV
(url, name) for ``--urls`` with the person's name on single-person photos,
then ``copies`` more URLs serving the first photos' bytes again (found later
and unnamed: the crawl skips them as duplicate content).
The host records the most requests it served at once (``peak``), measured
where a server measures it: from a request's arrival to its answer, and
how often its robots.txt was asked for (``robots_requests``; it has none: 404). Each
answer takes ``latency_s`` (a far-away host), so clients that are not held to
a limit do overlap.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
# Manifest folder → the person's name in the URL list.
_NAMES = {
    "obama": "Barack Obama",
    "biden": "Joe Biden",
    "kit_harington": "Kit Harington",
    "rose_leslie": "Rose Leslie",
    "lin_manuel_miranda": "Lin-Manuel Miranda",
    "alex_lacamoire": "Alex Lacamoire",
}


class Gallery:
    def __init__(self, faces_dir: Path, latency_s: float = 0.05, copies: int = 0) -> None:
        with (faces_dir / "manifest.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        self.photos = [(faces_dir / r["path"], r["people"].split(";")) for r in rows]
        self.copies = copies
        self.latency_s = latency_s
        self.in_flight = 0
        self.peak = 0
        self.requests = 0
        self.robots_requests = 0
        self.server: TestServer | None = None

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    def url_list(self, path: Path) -> Path:
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["url", "name"])
            for i, (photo, people) in enumerate(self.photos):
                name = _NAMES.get(people[0], "") if len(people) == 1 else ""
                out.writerow([self.url(f"/p/{i}{photo.suffix.lower()}"), name])
            for i, (photo, _) in enumerate(self.photos[: self.copies]):
                out.writerow([self.url(f"/p/{len(self.photos) + i}{photo.suffix.lower()}"), ""])
        return path

    async def _robots(self, request: web.Request) -> web.Response:
        self.robots_requests += 1
        raise web.HTTPNotFound()

    async def _photo(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            stem = Path(request.match_info["name"]).stem
            if not stem.isdigit() or int(stem) >= len(self.photos) + self.copies:
                raise web.HTTPNotFound()
            photo = self.photos[int(stem) % len(self.photos)][0]
            await asyncio.sleep(self.latency_s)
            return web.Response(body=photo.read_bytes(), content_type=_TYPES[photo.suffix.lower()])
        finally:
            self.in_flight -= 1


@asynccontextmanager
async def gallery(faces_dir: Path, latency_s: float = 0.05, copies: int = 0) -> AsyncIterator[Gallery]:
    g = Gallery(faces_dir, latency_s, copies)
    app = web.Application()
    app.router.add_get("/p/{name}", g._photo)
    app.router.add_get("/robots.txt", g._robots)
    g.server = TestServer(app, host="127.0.0.1")
    await g.server.start_server()
    try:
        yield g
    finally:
        await g.server.close()
