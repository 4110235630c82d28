"""What the page source needs from an HTML document: images, links, title, robots.

Pure functions from text to data, no fetching, so they are tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from sozy.charset import declared_charset

from .htmltext import clean_text
from .links import resolve_http_url
from .srcset import SrcsetCandidate, largest, parse_srcset

# <meta> image keys, Open Graph and Twitter cards.
_META_IMAGE_KEYS = frozenset({"og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"})
_META_IMAGE_ALT_KEYS = frozenset({"og:image:alt", "twitter:image:alt"})
# <picture><source type=...> we can decode; a source with another type is ignored.
_DECODABLE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"})
# Vector formats hold no photos worth a request.
_SKIPPED_EXTENSIONS = (".svg", ".svgz")
# A link to one of these is a photo (a gallery's full-size version), not a page.
_PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PageImage:
    url: str
    alt: str | None = None


@dataclass(slots=True)
class ParsedPage:
    """Absolute http(s) URLs of a page's images (largest candidate each) and links."""

    title: str | None = None
    images: list[PageImage] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    # Lower-cased directives from <meta name="robots"> (and the crawler's own token).
    robots: frozenset[str] = frozenset()

    @property
    def images_allowed(self) -> bool:
        return not (self.robots & {"noindex", "none", "noimageindex", "noai", "noimageai"})

    @property
    def links_allowed(self) -> bool:
        return not (self.robots & {"nofollow", "none"})


@dataclass(slots=True)
class _RawImage:
    """An image reference before resolution: its candidates and its fallback src."""

    candidates: list[SrcsetCandidate]
    src: str | None
    alt: str | None


class _PageParser(HTMLParser):
    def __init__(self, robots_names: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.robots_names = robots_names
        self.base: str | None = None
        self.title_parts: list[str] = []
        self.title_done = False
        self.in_title = False
        self.in_svg = 0
        self.og_title: str | None = None
        self.images: list[_RawImage] = []
        self.meta_images: list[list[str | None]] = []  # [url, alt]
        self.links: list[str] = []
        self.robots: set[str] = set()
        # Inside <picture>: the <source> candidates seen so far.
        self.picture_sources: list[SrcsetCandidate] | None = None
        # Inside <a href="photo.jpg">: that href, and whether an <img> used it.
        self.photo_link: str | None = None
        self.photo_link_used = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "svg":
            self.in_svg += 1
        elif tag == "title" and not self.title_done and not self.in_svg:
            self.in_title = True
        elif tag == "base" and self.base is None and a.get("href"):
            self.base = a["href"]
        elif tag == "meta":
            self._meta(a)
        elif tag == "picture":
            self.picture_sources = []
        elif tag == "source" and self.picture_sources is not None:
            mime = a.get("type", "").split(";")[0].strip().lower()
            srcset = a.get("srcset") or a.get("data-srcset")
            if srcset and (not mime or mime in _DECODABLE_TYPES):
                self.picture_sources.extend(parse_srcset(srcset))
        elif tag == "img":
            self._img(a)
        elif tag in {"a", "area"} and a.get("href"):
            href = a["href"]
            if _is_photo_link(href):
                self._end_photo_link()
                if tag == "a":
                    self.photo_link, self.photo_link_used = href, False
                else:
                    self.images.append(_RawImage([], href, clean_text(a.get("alt"))))
            elif "nofollow" not in a.get("rel", "").lower().split():
                self.links.append(href)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in {"svg", "picture"}:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._end_photo_link()
        elif tag == "svg":
            self.in_svg = max(0, self.in_svg - 1)
        elif tag == "title" and self.in_title:
            self.in_title = False
            self.title_done = True
        elif tag == "picture":
            self.picture_sources = None

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)

    def _meta(self, a: dict[str, str]) -> None:
        key = (a.get("property") or a.get("name") or "").strip().lower()
        content = a.get("content", "")
        if key in _META_IMAGE_KEYS and content:
            self.meta_images.append([content, None])
        elif key in _META_IMAGE_ALT_KEYS and self.meta_images and self.meta_images[-1][1] is None:
            self.meta_images[-1][1] = content
        elif key == "og:title" and self.og_title is None:
            self.og_title = content
        elif key == "robots" or key in self.robots_names:
            self.robots.update(t for t in re.split(r"[\s,]+", content.lower()) if t)

    def close(self) -> None:
        super().close()
        self._end_photo_link()

    def _end_photo_link(self) -> None:
        if self.photo_link is not None and not self.photo_link_used:
            self.images.append(_RawImage([], self.photo_link, None))
        self.photo_link = None

    def _img(self, a: dict[str, str]) -> None:
        if self.photo_link is not None and not self.photo_link_used:
            # A thumbnail linking to its full-size photo: the photo it links to.
            self.photo_link_used = True
            self.images.append(_RawImage([], self.photo_link, clean_text(a.get("alt"))))
            return
        src = a.get("src") or None
        if src is None or src.startswith("data:"):
            # Lazy-loading pages keep the real URL in data-src and a placeholder in src.
            src = a.get("data-src") or src
        candidates = parse_srcset(a.get("srcset") or a.get("data-srcset") or "")
        if self.picture_sources:
            candidates = self.picture_sources + candidates
        self.images.append(_RawImage(candidates, src, clean_text(a.get("alt"))))


def parse_page(html: str, page_url: str, *, robots_token: str = "") -> ParsedPage:
    """Images, links, title and robots directives of an HTML document.

    Each ``<img>`` (with its ``<picture>`` sources) gives one image: the
    largest ``srcset`` candidate by width (else by density), else its ``src``;
    inside ``<a href="….jpg">`` (a gallery thumbnail) the linked photo
    instead. A link to a photo file is a photo, not a page. Open Graph /
    Twitter card images come after. URLs are resolved against
    ``<base href>`` or ``page_url``; ``data:`` and non-http(s) references,
    SVGs and duplicates are dropped; fragments are removed from links.
    """
    names = frozenset({robots_token.lower()}) if robots_token else frozenset()
    parser = _PageParser(names)
    parser.feed(html)
    parser.close()
    base = page_url
    if parser.base:
        base = resolve_http_url(page_url, parser.base) or page_url

    page = ParsedPage(
        title=clean_text("".join(parser.title_parts)) or clean_text(parser.og_title),
        robots=frozenset(parser.robots),
    )
    seen_images: set[str] = set()

    def add_image(ref: str | None, alt: str | None) -> None:
        url = resolve_http_url(base, ref)
        if url is None or url in seen_images or url.lower().split("?")[0].endswith(_SKIPPED_EXTENSIONS):
            return
        seen_images.add(url)
        page.images.append(PageImage(url, alt))

    for raw in parser.images:
        best = largest(raw.candidates)
        add_image(best.url if best else raw.src, raw.alt)
    for ref, alt in parser.meta_images:
        add_image(ref, clean_text(alt))

    seen_links: set[str] = set()
    for ref in parser.links:
        url = resolve_http_url(base, ref)
        if url is not None and url not in seen_links:
            seen_links.add(url)
            page.links.append(url)
    return page


def decode_html(body: bytes, content_type: str | None) -> str:
    """Text of an HTML body: charset from the header, else ``<meta charset>``, else UTF-8."""
    charset = declared_charset(content_type)
    if charset is None:
        match = _CHARSET.search(body[:4096])
        if match:
            charset = match.group(1).decode("ascii", "replace")
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return body.decode("utf-8", errors="replace")


def _is_photo_link(href: str) -> bool:
    path = href.split("#", 1)[0].split("?", 1)[0].lower()
    return path.endswith(_PHOTO_EXTENSIONS) and not path.startswith(("data:", "javascript:"))
