"""The state key of a URL: only normalizations that cannot change what it points to."""

from __future__ import annotations

import pytest

from sozy.crawl.urlkey import normalize_url


@pytest.mark.parametrize(
    "raw, key",
    [
        ("HTTP://Example.ORG/a/B.jpg", "http://example.org/a/B.jpg"),
        ("http://example.org:80/a.jpg", "http://example.org/a.jpg"),
        ("https://example.org:443/a.jpg#face", "https://example.org/a.jpg"),
        ("https://example.org:8443/a.jpg", "https://example.org:8443/a.jpg"),
        ("http://example.org", "http://example.org/"),
        ("  http://example.org/a.jpg \n", "http://example.org/a.jpg"),
        # The query is kept as written: order and encoding can matter to the server.
        ("http://example.org/img?b=2&a=1", "http://example.org/img?b=2&a=1"),
        ("http://example.org/a%2Fb.jpg", "http://example.org/a%2Fb.jpg"),
        ("http://[::1]:8080/a.jpg", "http://[::1]:8080/a.jpg"),
        ("file:///photos/ann/1.jpg", "file:///photos/ann/1.jpg"),
        ("file://localhost/photos/1.jpg", "file:///photos/1.jpg"),
        ("file:faces/obama/obama.jpg", "file:faces/obama/obama.jpg"),  # a crawled folder's photo
        ("FILE:faces/a%20b/1.jpg#x", "file:faces/a%20b/1.jpg"),
    ],
)
def test_normalize(raw: str, key: str) -> None:
    assert normalize_url(raw) == key


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "example.org/a.jpg",
        "ftp://example.org/a.jpg",
        "data:image/png;base64,AA",
        "http://",
        "http://example.org:99999/a.jpg",
        "file://remote/x.jpg",
    ],
)
def test_not_a_photo_url(raw: str) -> None:
    assert normalize_url(raw) is None
