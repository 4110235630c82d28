"""The redirect steps the crawler's fetcher and the API's image_url fetch share."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict
from yarl import URL

from sozy.fetch.redirects import BadRedirect, RedirectChain, RedirectLimit, next_hop, redirect_location

BASE = URL("http://example.org/a/b.jpg?x=1")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_statuses_with_a_location_redirect(status: int) -> None:
    assert redirect_location(status, CIMultiDict({"location": "/c.jpg"})) == "/c.jpg"


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (200, {"Location": "/c.jpg"}),
        (300, {"Location": "/c.jpg"}),
        (304, {"Location": "/c.jpg"}),
        (302, {}),
        (302, {"Location": ""}),
    ],
)
def test_other_answers_are_no_redirect(status: int, headers: dict[str, str]) -> None:
    assert redirect_location(status, CIMultiDict(headers)) is None


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/c.jpg", "http://example.org/c.jpg"),
        ("c.jpg", "http://example.org/a/c.jpg"),
        ("//cdn.example.net/c.jpg", "http://cdn.example.net/c.jpg"),
        ("https://example.org/c.jpg", "https://example.org/c.jpg"),
    ],
)
def test_next_hop_resolves_against_the_url_that_sent_it(location: str, expected: str) -> None:
    assert next_hop(BASE, location) == URL(expected)


@pytest.mark.parametrize(
    "location", ["ftp://example.org/c.jpg", "file:///etc/passwd", "javascript:alert(1)", "https:/c.jpg"]
)
def test_next_hop_refuses_other_schemes_and_missing_hosts(location: str) -> None:
    with pytest.raises(BadRedirect, match="redirect to"):
        next_hop(BASE, location)


def test_next_hop_refuses_an_unparsable_location() -> None:
    with pytest.raises(BadRedirect, match="bad redirect"):
        next_hop(BASE, "http://[::1")


def test_chain_allows_limit_hops_then_refuses() -> None:
    chain = RedirectChain(URL("http://h/0"), limit=3)
    for i in range(1, 4):
        assert chain.follow(URL(f"http://h/{i}")) == URL(f"http://h/{i}")
    assert chain.hops == 3
    with pytest.raises(RedirectLimit) as caught:
        chain.follow(URL("http://h/4"))
    assert caught.value.hops == 4 and caught.value.target == URL("http://h/4")
    assert str(caught.value) == "4 redirects, last to http://h/4"


@pytest.mark.parametrize("back_to", ["http://h/0", "http://h/1"])
def test_chain_stops_at_the_first_repeat(back_to: str) -> None:
    chain = RedirectChain(URL("http://h/0"), limit=20)
    chain.follow(URL("http://h/1"))
    with pytest.raises(RedirectLimit):
        chain.follow(URL(back_to))
    assert chain.hops == 1


def test_a_zero_limit_follows_nothing() -> None:
    with pytest.raises(RedirectLimit):
        RedirectChain(URL("http://h/0"), limit=0).follow(URL("http://h/1"))
