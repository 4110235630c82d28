"""One round trip's failures as reason codes (``sozy.fetch.request``); the round trips
themselves run against the hostile server in test_fetcher.py."""

from __future__ import annotations

import aiohttp
import pytest
from multidict import CIMultiDict

from sozy.fetch.errors import FetchError
from sozy.fetch.request import IMAGE_ACCEPT, RequestKind, request_headers, transport_failure
from sozy.fetch.responses import Retry

URL = "http://example.org/a.jpg"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError("read"), "timeout"),
        (ValueError("bad port"), "bad_url"),
        (aiohttp.InvalidURL("http://[x"), "bad_url"),
    ],
)
def test_failures_that_are_final(exc: BaseException, reason: str) -> None:
    failure = transport_failure(exc, URL)
    assert isinstance(failure, FetchError) and failure.reason == reason and failure.url == URL


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (aiohttp.ClientPayloadError("cut short"), "incomplete_body"),
        (aiohttp.ServerDisconnectedError(), "connection"),
        (ConnectionResetError(104, "reset"), "connection"),
        (aiohttp.ClientConnectionError(), "connection"),
    ],
)
def test_broken_connections_are_worth_another_try(exc: BaseException, reason: str) -> None:
    failure = transport_failure(exc, URL)
    assert isinstance(failure, Retry) and failure.error.reason == reason
    assert failure.error.detail  # never an empty message, even for an exception without one


def test_headers_put_the_callers_own_last() -> None:
    kind = RequestKind("image", 1000, IMAGE_ACCEPT, robots=True, image=True)
    headers = request_headers("Agent/1", kind, "http://example.org/page", {"accept": "image/png"})
    assert isinstance(headers, CIMultiDict)
    assert headers["User-Agent"] == "Agent/1"
    assert headers["Referer"] == "http://example.org/page"
    assert headers.getall("Accept") == ["image/png"]
    assert "Referer" not in request_headers("Agent/1", kind, None, None)
