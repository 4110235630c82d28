"""URL resolution and same-site checks."""

from __future__ import annotations

import pytest

from sozy.sources.links import normalize_http_url, resolve_http_url, same_site, site_of

BASE = "https://www.example.co.uk/people/obama.html?tab=1"


@pytest.mark.parametrize(
    ("ref", "url"),
    [
        ("../img/a.jpg", "https://www.example.co.uk/img/a.jpg"),
        ("b.jpg#zoom", "https://www.example.co.uk/people/b.jpg"),
        ("//cdn.example.net/c.jpg", "https://cdn.example.net/c.jpg"),
        ("  /d.jpg\n", "https://www.example.co.uk/d.jpg"),
        ("HTTP://WWW.Example.CO.UK:80/e.jpg", "http://www.example.co.uk/e.jpg"),
        ("https://x.example.org:8443", "https://x.example.org:8443/"),
        ("#top", "https://www.example.co.uk/people/obama.html?tab=1"),
        ("data:image/png;base64,AAAA", None),
        ("javascript:void(0)", None),
        ("mailto:a@example.org", None),
        ("https://user:pw@example.org/", None),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://bad-port:99999/", None),
        ("", None),
        (None, None),
    ],
)
def test_resolve_http_url(ref: str | None, url: str | None) -> None:
    assert resolve_http_url(BASE, ref) == url


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://www.example.co.uk/a", "example.co.uk"),
        ("http://images.news.example.co.uk:8080/", "example.co.uk"),
        ("https://someone.github.io/", "someone.github.io"),
        ("http://127.0.0.1:8000/", "127.0.0.1"),
        ("http://localhost:8000/", "localhost"),
        ("not a url", None),
    ],
)
def test_site_of(url: str, site: str | None) -> None:
    assert site_of(url) == site


def test_same_site() -> None:
    assert same_site("https://www.example.org/a", "http://img.example.org/b")
    assert not same_site("https://alice.github.io/", "https://bob.github.io/")
    assert not same_site("http://127.0.0.1:1/", "http://localhost:1/")
    assert normalize_http_url("ftp://example.org/") is None
