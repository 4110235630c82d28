"""A local "celebrity site" built from the real face photos in examples/faces.

An index page links one page per person; each person page shows that
person's photos the ways real sites do (``srcset`` with several widths,
``<picture>`` with WebP and AVIF sources, a density ``srcset``, a lazy
``data-src`` image, ``og:image``), plus decoys without faces (a logo, generated
landscapes, an SVG icon, a ``data:`` placeholder). A gallery page per person
sits one level deeper; a groups page shows the group photos; a page with
``<meta name="robots" content="noimageindex, nofollow">``, a broken link
(404) and an off-site link (``localhost`` instead of ``127.0.0.1``) test the
crawler's manners.

``expected_images(depth)`` says exactly which image URLs a page crawl from
the index should find at a given link depth, and who is in each, so tests
in every area can assert what gets stored::

    async with celebrity_site(faces_dir) as site:
        start = site.url("/")
        expected = site.expected_images(depth=1)

or, as a pytest fixture: ``from tests.servers.celebrity import celebrity``.
"""

from __future__ import annotations

import asyncio
import csv
import html
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image, ImageDraw

# Manifest folder name → the name a person is known by.
PEOPLE: dict[str, str] = {
    "obama": "Barack Obama",
    "biden": "Joe Biden",
    "kit_harington": "Kit Harington",
    "rose_leslie": "Rose Leslie",
    "lin_manuel_miranda": "Lin-Manuel Miranda",
    "alex_lacamoire": "Alex Lacamoire",
}
SITE_TITLE = "Sozy Test Celebrities"
# A 1×1 transparent GIF, the usual lazy-loading placeholder.
_PLACEHOLDER = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


# --- photos ------------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """One row of manifest.csv."""

    path: str  # relative to the faces folder, e.g. "obama/obama.jpg"
    people: tuple[str, ...]
    faces: int
    width: int
    height: int

    @property
    def person(self) -> str | None:
        return self.people[0] if len(self.people) == 1 else None

    @property
    def names(self) -> tuple[str, ...]:
        """Display names of the known people in the photo ("unknown" left out)."""
        return tuple(sorted(PEOPLE[p] for p in self.people if p in PEOPLE))


def read_manifest(faces_dir: Path) -> list[Photo]:
    with (faces_dir / "manifest.csv").open(newline="") as fh:
        return [
            Photo(
                row["path"], tuple(row["people"].split(";")), int(row["faces"]), int(row["width"]), int(row["height"])
            )
            for row in csv.DictReader(fh)
        ]


class PhotoRenderer:
    """Real photos resized on request (never upscaled), cached, off the event loop."""

    def __init__(self, faces_dir: Path) -> None:
        self.faces_dir = faces_dir
        self._cache: dict[tuple[str, int | None, str | None], tuple[bytes, str]] = {}

    async def render(self, path: str, width: int | None, fmt: str | None = None) -> tuple[bytes, str]:
        """(bytes, content type) of ``path`` at ``width`` px (None: the original file as is)."""
        key = (path, width, fmt)
        if key not in self._cache:
            self._cache[key] = await asyncio.to_thread(self._render, path, width, fmt)
        return self._cache[key]

    def _render(self, path: str, width: int | None, fmt: str | None) -> tuple[bytes, str]:
        file = (self.faces_dir / path).resolve()
        if self.faces_dir.resolve() not in file.parents or not file.is_file():
            raise FileNotFoundError(path)
        if width is None and fmt is None:
            kind = "png" if file.suffix.lower() == ".png" else "jpeg"
            return file.read_bytes(), _MIME[kind]
        with Image.open(file) as img:
            img.load()
            if width is not None and width < img.width:
                height = max(1, round(img.height * width / img.width))
                img = img.resize((width, height), Image.Resampling.LANCZOS)
            kind = fmt or ("png" if img.mode in ("RGBA", "LA", "P") else "jpeg")
            if kind == "jpeg" and img.mode != "RGB":
                img = img.convert("RGB")
            out = io.BytesIO()
            img.save(out, format=kind.upper(), quality=90)
            return out.getvalue(), _MIME[kind]


def decoy_images() -> dict[str, tuple[bytes, str]]:
    """Generated images with no face: a flat logo, two landscapes, a banner, an SVG icon."""

    def encode(img: Image.Image, kind: str) -> tuple[bytes, str]:
        out = io.BytesIO()
        img.save(out, format=kind.upper())
        return out.getvalue(), _MIME[kind]

    def landscape(seed: int) -> Image.Image:
        img = Image.new("RGB", (800, 500), (0, 0, 0))
        draw = ImageDraw.Draw(img)
        for y in range(300):  # sky, lighter towards the horizon
            shade = 120 + y * 120 // 300
            draw.line([(0, y), (800, y)], fill=(shade // 2, shade - 20 + seed * 10, 255))
        draw.ellipse([600 - seed * 200, 60, 680 - seed * 200, 140], fill=(255, 230, 120))  # sun
        for i in range(4):  # hills
            x = i * 260 - 100 + seed * 40
            draw.ellipse([x, 250 + i % 2 * 30, x + 500, 700], fill=(40, 110 + i * 25, 50))
        return img

    logo = Image.new("RGBA", (200, 80), (200, 30, 60, 255))
    ImageDraw.Draw(logo).rectangle([20, 20, 180, 60], fill=(255, 255, 255, 255))
    banner = Image.new("RGB", (1200, 300), (30, 60, 120))
    ImageDraw.Draw(banner).rectangle([0, 200, 1200, 300], fill=(240, 200, 40))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><circle cx="8" cy="8" r="7"/></svg>'
    return {
        "logo.png": encode(logo, "png"),
        "landscape-1.jpg": encode(landscape(0), "jpeg"),
        "landscape-2.jpg": encode(landscape(1), "jpeg"),
        "banner.jpg": encode(banner, "jpeg"),
        "icon.svg": (svg, "image/svg+xml"),
    }


# --- the site ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedImage:
    """An image a page crawl should find: where, on which page, who is in it."""

    url: str
    page_url: str
    page_title: str
    alt: str | None
    depth: int  # link depth of the page it is first found on (index = 0)
    photo: Photo | None  # None for decoys (no face)

    @property
    def people(self) -> tuple[str, ...]:
        return self.photo.people if self.photo else ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.photo.names if self.photo else ()

    @property
    def faces(self) -> int:
        return self.photo.faces if self.photo else 0


@dataclass
class _Page:
    path: str
    title: str
    depth: int
    body: str
    # (image path or absolute marker, alt, photo) in the order a parser meets them.
    images: list[tuple[str, str | None, Photo | None]] = field(default_factory=list)
    status: int = 200
    images_indexable: bool = True


@dataclass(frozen=True)
class SeenRequest:
    method: str
    host: str
    path: str
    user_agent: str


class CelebritySite:
    """The site's pages and images; ``start()`` serves them on 127.0.0.1."""

    def __init__(self, faces_dir: Path) -> None:
        self.faces_dir = Path(faces_dir)
        self.photos = read_manifest(self.faces_dir)
        self.renderer = PhotoRenderer(self.faces_dir)
        self.decoys = decoy_images()
        self.requests: list[SeenRequest] = []
        self._server: TestServer | None = None
        self._pages: dict[str, _Page] = {}

    # -- addresses --

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("celebrity site not started")
        return f"http://127.0.0.1:{self._server.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def offsite_url(self, path: str) -> str:
        """The same server under another host name: another site to a crawler."""
        return self.url(path).replace("127.0.0.1", "localhost", 1)

    # -- expectations --

    def expected_images(self, depth: int = 1) -> dict[str, ExpectedImage]:
        """Image URL → what it shows, for a crawl from ``/`` with ``page_depth=depth``.

        In breadth-first page order; an image on several pages counts where it
        is first met. Images on pages that forbid indexing, on failing pages
        and on other sites are not included.
        """
        found: dict[str, ExpectedImage] = {}
        for page in sorted(self._pages.values(), key=lambda p: p.depth):
            if page.depth > depth or page.status != 200 or not page.images_indexable:
                continue
            for ref, alt, photo in page.images:
                url = self.url(ref)
                if url not in found:
                    found[url] = ExpectedImage(url, self.url(page.path), page.title, alt, page.depth, photo)
        return found

    def pages(self, depth: int = 1) -> list[str]:
        """URLs of the pages a crawl from ``/`` visits at ``depth`` (failing ones included)."""
        return [self.url(p.path) for p in self._pages.values() if p.depth <= depth]

    def requested_paths(self, host: str = "127.0.0.1") -> list[str]:
        return [r.path for r in self.requests if r.host.split(":")[0] == host]

    # -- lifecycle --

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/photos/{width}/{path:.+}", self._photo)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/{path:.*}", self._page)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self._build_pages()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()
            self._server = None

    # -- handlers --

    @web.middleware
    async def _record(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        self.requests.append(
            SeenRequest(request.method, request.host, request.path_qs, request.headers.get("User-Agent", ""))
        )
        return await handler(request)

    async def _robots(self, request: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nAllow: /\n", content_type="text/plain")

    async def _photo(self, request: web.Request) -> web.Response:
        raw_width, path = request.match_info["width"], request.match_info["path"]
        fmt = None
        if path.endswith(".webp"):
            path, fmt = path[: -len(".webp")], "webp"
        if raw_width != "full" and not raw_width.isdigit():
            raise web.HTTPNotFound()
        try:
            body, mime = await self.renderer.render(path, None if raw_width == "full" else int(raw_width), fmt)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type=mime)

    async def _static(self, request: web.Request) -> web.Response:
        found = self.decoys.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])

    async def _page(self, request: web.Request) -> web.Response:
        page = self._pages.get(request.path)
        if page is None or page.status != 200:
            return web.Response(status=404, text="<h1>Not found</h1>", content_type="text/html")
        kind = "application/json" if page.path.endswith(".json") else "text/html"
        return web.Response(text=page.body, content_type=kind, charset="utf-8")

    # -- pages --

    def _build_pages(self) -> None:
        by_person: dict[str, list[Photo]] = {}
        for photo in self.photos:
            if photo.person in PEOPLE:
                by_person.setdefault(photo.person, []).append(photo)
        groups = [p for p in self.photos if p.person is None]

        index = _Page("/", SITE_TITLE, 0, "")
        index.images = [("/static/logo.png", "Sozy logo", None), ("/static/banner.jpg", None, None)]
        person_links = "".join(
            f'<li><a href="/people/{key}.html">{html.escape(PEOPLE[key])}</a></li>' for key in by_person
        )
        index.body = _document(
            SITE_TITLE,
            meta=_og(self.url("/static/banner.jpg")),
            body=f"""
<a href="#top">Top</a> <img src="/static/logo.png" alt="Sozy logo">
<ul>{person_links}</ul>
<p><a href="/groups.html">Group photos</a> · <a href="about.html">About</a>
 · <a href="/private.html">Private</a> · <a href="/missing.html">Old page</a>
 · <a href="/data.json">Data</a>
 · <a href="mailto:team@example.org">Mail</a> · <a href="javascript:void(0)">Menu</a>
 · <a href="{self.offsite_url("/elsewhere.html")}">Partner site</a></p>
<p><img src="/static/icon.svg" alt=""> <img src="{_PLACEHOLDER}" alt=""></p>""",
        )
        self._add(index)

        for key, photos in by_person.items():
            self._person_pages(key, photos)

        group_page = _Page("/groups.html", f"Group photos — {SITE_TITLE}", 1, "")
        tags = []
        for photo in groups:
            alt = " and ".join(photo.names)
            group_page.images.append((f"/photos/full/{photo.path}", alt, photo))
            tags.append(f'<figure><img src="/photos/full/{photo.path}" alt="{html.escape(alt)}"></figure>')
        group_page.body = _document(group_page.title, body="".join(tags) + '<a href="/">Home</a>')
        self._add(group_page)

        about = _Page("/about.html", f"About — {SITE_TITLE}", 1, "")
        about.images = [("/static/landscape-1.jpg", "Hills", None), ("/static/landscape-2.jpg", "More hills", None)]
        about.body = _document(
            about.title,
            body='<img src="static/landscape-1.jpg" alt="Hills"><img src="/static/landscape-2.jpg" alt="More hills">',
        )
        self._add(about)

        private = _Page("/private.html", f"Private — {SITE_TITLE}", 1, "", images_indexable=False)
        private.images = [(f"/photos/full/{groups[0].path}", "Private photo", groups[0])]
        private.body = _document(
            private.title,
            meta='<meta name="robots" content="noimageindex, nofollow">',
            body=f'<img src="/photos/full/{groups[0].path}" alt="Private photo"><a href="/secret.html">Secret</a>',
        )
        self._add(private)
        # /secret.html is linked only from the nofollow page: no crawler should ask for it.
        self._add(_Page("/missing.html", "Missing", 1, "", status=404))
        self._add(_Page("/data.json", "Data", 1, '{"people": 6}', images_indexable=False))

    def _person_pages(self, key: str, photos: list[Photo]) -> None:
        name = PEOPLE[key]
        title = f"{name} — {SITE_TITLE}"
        page = _Page(f"/people/{key}.html", title, 1, "")
        portrait, rest = photos[0], photos[1:]
        og_photo = rest[0] if rest else portrait
        # Several widths, the original last: the crawler must pick the original.
        entries = [f"/photos/{w}/{portrait.path} {w}w" for w in (320, 640) if w < portrait.width]
        entries.append(f"/photos/full/{portrait.path} {portrait.width}w")
        src = entries[0].split()[0]
        tags = [
            f'<img src="{src}" srcset="{", ".join(entries)}" '
            f'sizes="(max-width: 600px) 100vw, 50vw" alt="{html.escape(name)}">'
        ]
        page.images.append((f"/photos/full/{portrait.path}", name, portrait))
        more = rest[1:]
        if more:  # <picture>: AVIF (undecodable, ignored) and WebP sources; the WebP 2× width wins
            photo = more.pop(0)
            small, large = min(480, photo.width), min(960, photo.width)
            tags.append(
                f'<picture><source type="image/avif" srcset="/photos/{large}/{photo.path}.avif {large}w">'
                f'<source type="image/webp" srcset="/photos/{small}/{photo.path}.webp {small}w, '
                f'/photos/{large}/{photo.path}.webp {large}w">'
                f'<img src="/photos/{small}/{photo.path}" alt="{html.escape(name)} on stage"></picture>'
            )
            page.images.append((f"/photos/{large}/{photo.path}.webp", f"{name} on stage", photo))
        if more:  # density srcset, relative URLs with ".."
            photo = more.pop(0)
            small, large = min(400, photo.width), min(800, photo.width)
            tags.append(
                f'<img src="../photos/{small}/{photo.path}" srcset="../photos/{large}/{photo.path} 2x" '
                f'alt="{html.escape(name)}, 2019">'
            )
            page.images.append((f"/photos/{large}/{photo.path}", f"{name}, 2019", photo))
        if more:  # lazy loading: placeholder in src, real URL in data-src
            photo = more.pop(0)
            tags.append(f'<img src="{_PLACEHOLDER}" data-src="/photos/full/{photo.path}" alt="">')
            page.images.append((f"/photos/full/{photo.path}", None, photo))
        tags.append('<img src="/static/logo.png" alt="Sozy logo">')
        page.images.append(("/static/logo.png", "Sozy logo", None))
        # og:image last in the parser's order; for a one-photo person it repeats the portrait.
        og_ref = f"/photos/full/{og_photo.path}"
        if og_photo is not portrait:
            page.images.append((og_ref, None, og_photo))
        links = f'<a href="/">Home</a> <a href="{key}/gallery.html">Gallery</a> <a href="#bio">Bio</a>'
        page.body = _document(title, meta=_og(self.url(og_ref)), body="".join(tags) + links)
        self._add(page)

        gallery = _Page(f"/people/{key}/gallery.html", f"{name}: gallery — {SITE_TITLE}", 2, "")
        tags = []
        for i, photo in enumerate(more, 1):
            alt = f"{name} ({i})"
            # Thumbnails linking to the full-size photo, as galleries do: the link wins.
            tags.append(
                f'<a href="/photos/full/{photo.path}"><img src="/photos/{min(200, photo.width)}/{photo.path}" '
                f'alt="{html.escape(alt)}"></a>'
            )
            gallery.images.append((f"/photos/full/{photo.path}", alt, photo))
        gallery.body = _document(
            gallery.title, body="".join(tags) + f'<a href="/people/{key}.html">Back</a><a href="/">Home</a>'
        )
        self._add(gallery)

    def _add(self, page: _Page) -> None:
        self._pages[page.path] = page


def _og(image_url: str) -> str:
    return f'<meta property="og:image" content="{html.escape(image_url)}">'


def _document(title: str, *, body: str, meta: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title>{meta}</head><body>{body}</body></html>"
    )


@asynccontextmanager
async def celebrity_site(faces_dir: Path) -> AsyncIterator[CelebritySite]:
    """Serve the site on an ephemeral 127.0.0.1 port for the duration of the block."""
    site = CelebritySite(faces_dir)
    await site.start()
    try:
        yield site
    finally:
        await site.close()


@pytest.fixture
async def celebrity(faces_dir: Path) -> AsyncIterator[CelebritySite]:
    """The site for one test; import this name into a conftest or test module to use it."""
    async with celebrity_site(faces_dir) as site:
        yield site
