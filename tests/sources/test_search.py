"""ImageSearch: parsing Bing-style result anchors, and lookups against the fake results page."""

from __future__ import annotations

import html
import json

import pytest

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher, FetchError
from sozy.sources import ImageSearch
from sozy.sources.search import parse_results
from tests.servers.wikimedia import WikimediaServer


def _tile(meta: object, cls: str = "iusc") -> str:
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    return f'<a class="{cls}" m="{html.escape(raw)}" href="/images/search?view=detailV2">x</a>'


def test_parse_results_reads_media_and_page_urls_in_order() -> None:
    page = "".join(
        [
            "<html><body><div>",
            _tile({"murl": "https://img.example.org/a.jpg", "purl": "https://news.example.org/a", "t": " A  photo "}),
            _tile("{broken json"),
            _tile({"murl": "data:image/png;base64,AAAA", "purl": "https://x.example.org/"}),
            _tile({"murl": "https://img.example.org/b.jpg", "purl": "javascript:alert(1)"}),
            _tile({"murl": "https://img.example.org/a.jpg", "purl": "https://dup.example.org/"}),  # a repeat
            _tile({"murl": "https://img.example.org/c.jpg"}, cls="iusc extra"),
            _tile({"murl": "https://img.example.org/ignored.jpg"}, cls="other"),
            _tile(["not", "an", "object"]),
            "</div></body></html>",
        ]
    )
    found = parse_results(page, "Some Body")
    assert [(c.image_url, c.page_url) for c in found] == [
        ("https://img.example.org/a.jpg", "https://news.example.org/a"),
        ("https://img.example.org/b.jpg", None),
        ("https://img.example.org/c.jpg", None),
    ]
    assert {(c.name, c.source) for c in found} == {("Some Body", "search")}
    assert found[0].alt == "A photo"
    assert [c.image_url for c in parse_results(page, "x", limit=2)] == [
        "https://img.example.org/a.jpg",
        "https://img.example.org/b.jpg",
    ]


def test_a_page_without_results_gives_nothing() -> None:
    assert parse_results("<html><body><p>No results</p></body></html>", "x") == []
    assert parse_results("", "x") == []


def test_results_url_encodes_the_name() -> None:
    search = ImageSearch(None, CrawlSettings(search_url="https://s.example.org/images/search"))  # type: ignore[arg-type]
    assert search.results_url("Beyoncé & Jay-Z") == "https://s.example.org/images/search?q=Beyonc%C3%A9+%26+Jay-Z"
    search = ImageSearch(None, CrawlSettings(search_url="https://s.example.org/search?form=IRFLTR"))  # type: ignore[arg-type]
    assert search.results_url("a b") == "https://s.example.org/search?form=IRFLTR&q=a+b"


async def test_lookup_against_the_fake_results_page(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        found = await ImageSearch(fetcher, settings).lookup("  Joe   Biden ")
    assert [(c.image_url, c.page_url) for c in found] == wikimedia.search_results("Joe Biden")
    assert len(found) == 4
    assert {(c.name, c.source) for c in found} == {("Joe Biden", "search")}
    (request,) = wikimedia.requests_to("search")
    assert request.params == {"q": "Joe Biden"}
    # A results page is an ordinary page: a browser user agent, not the API one.
    assert request.headers["User-Agent"] != settings.api_user_agent


async def test_lookup_caps_results_and_finds_nothing_for_unknown_names(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings(images_per_person=2)
    async with Fetcher(settings) as fetcher:
        search = ImageSearch(fetcher, settings)
        assert len(await search.lookup("Barack Obama")) == 2
        assert await search.lookup("Nobody Atall") == []
        assert await search.lookup("   ") == []
    assert len(wikimedia.requests_to("search")) == 2


async def test_robots_txt_of_the_search_engine_is_honoured(wikimedia: WikimediaServer) -> None:
    wikimedia.robots_txt = "User-agent: *\nDisallow: /images/\n"
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        with pytest.raises(FetchError) as info:
            await ImageSearch(fetcher, settings).lookup("Joe Biden")
    assert info.value.reason == "robots_txt"
    assert wikimedia.requests_to("search") == []


async def test_a_q_id_is_searched_by_the_persons_label(wikimedia: WikimediaServer) -> None:
    from sozy.sources import WikidataNames

    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        search = ImageSearch(fetcher, settings)
        found = await search.lookup_person("Q6279", WikidataNames(fetcher, settings))
        merged = await search.lookup_person("Q4000099", WikidataNames(fetcher, settings))
        nobody = await search.lookup_person("Q99999999", WikidataNames(fetcher, settings))
    assert [(c.image_url, c.page_url) for c in found] == wikimedia.search_results("Joe Biden")
    assert {(c.name, c.person_id) for c in found} == {("Joe Biden", "Q6279")}
    assert {(c.name, c.person_id) for c in merged} == {("Kit Harington", "Q4000002")}
    assert nobody == []
    assert [r.params["q"] for r in wikimedia.requests_to("search")] == ["Joe Biden", "Kit Harington"]


async def test_refusal_says_why_robots_txt_keeps_us_out(wikimedia: WikimediaServer) -> None:
    settings = wikimedia.settings()
    async with Fetcher(settings) as fetcher:
        assert await ImageSearch(fetcher, settings).refusal() is None
    wikimedia.robots_txt = "User-agent: SozyBot\nDisallow: /images/\n"
    async with Fetcher(settings) as fetcher:
        refusal = await ImageSearch(fetcher, settings).refusal()
    assert refusal is not None and refusal.startswith("robots_txt:") and "/images/search" in refusal
    assert wikimedia.requests_to("search") == []
