"""The fake image search engine: a results page shaped like Bing's, listing the people's Commons photos."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Callable
from urllib.parse import quote

from aiohttp import web

from .wikimedia_json import file_title
from .wikimedia_media import MediaHost
from .wikimedia_world import CATEGORIES, ENTITIES, FakeFile


class SearchPage:
    """``GET ?q=<name>``: tiles of ``a.iusc`` anchors whose ``m`` JSON names a photo and its page."""

    def __init__(
        self, media: MediaHost, description_url: Callable[[FakeFile], str], base_url: Callable[[], str]
    ) -> None:
        self.media = media
        self.description_url = description_url
        self._base_url = base_url

    @property
    def base_url(self) -> str:
        return self._base_url()

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        query = params.get("q", "").strip()
        return web.Response(text=self.search_page(query), content_type="text/html", charset="utf-8")

    def search_results(self, query: str) -> list[tuple[str, str]]:
        """(media URL, page URL) of the real results the fake page lists for ``query``."""
        wanted = query.casefold()
        results: list[tuple[str, str]] = []
        for entity in ENTITIES:
            if not wanted or wanted not in {entity.label.casefold(), *(a.casefold() for a in entity.aliases)}:
                continue
            names = [*entity.preferred_images, *entity.images]
            if entity.category:
                names += list(CATEGORIES.get(entity.category, ()))
            for name in dict.fromkeys(file_title(n) for n in names):
                f = self.media.files.get(name)
                if f is not None and f.photo is not None:
                    pair = (self.media.original_url(f), self.description_url(f))
                    if pair not in results:
                        results.append(pair)
        return results

    def search_page(self, query: str) -> str:
        """A results page shaped like Bing's: tiles of ``a.iusc`` with ``m`` JSON, plus noise."""
        tiles = []
        for i, (media, page) in enumerate(self.search_results(query)):
            meta = {
                "cid": f"c{i}",
                "purl": page,
                "murl": media,
                "turl": f"{self.base_url}/th?id=OIP.{i}",
                "md5": hashlib.md5(media.encode()).hexdigest(),
                "t": f"{query} photo {i + 1}",
                "desc": "",
                "shkey": "",
            }
            tiles.append(
                f'<li><div class="iuscp"><div class="imgpt">'
                f'<a class="iusc" style="height:180px;width:270px" m="{html.escape(json.dumps(meta))}" '
                f'mad="{html.escape(json.dumps({"turl": meta["turl"]}))}" '
                f'href="/images/search?view=detailV2&amp;q={quote(query)}&amp;idx={i}">'
                f'<img class="mimg" src="{meta["turl"]}" alt="{html.escape(meta["t"])}"></a></div></div></li>'
            )
        if tiles:
            # Noise the parser must ignore: a tile whose metadata is not JSON, one
            # with a data: media URL, and an ordinary anchor.
            tiles.insert(1, '<li><a class="iusc" m="{not json">broken</a></li>')
            tiles.append(
                f'<li><a class="iusc" m="{html.escape(json.dumps({"murl": "data:image/png;base64,AAAA"}))}">x</a></li>'
            )
            tiles.append('<li><a class="other" href="/images/search?q=more">More</a></li>')
        return (
            f"<!DOCTYPE html><html><head><title>{html.escape(query)} - Search Images</title></head>"
            f'<body><div id="b_content"><ul class="dgControl_list">{"".join(tiles)}</ul></div></body></html>'
        )
