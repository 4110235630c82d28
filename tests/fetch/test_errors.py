"""FetchError: reason codes and pickling (errors cross process boundaries)."""

from __future__ import annotations

import pickle

from sozy.fetch import FetchError
from sozy.fetch.errors import http_reason


def test_http_reasons() -> None:
    assert http_reason(404) == "http_404"
    assert http_reason(429) == "http_429"
    assert http_reason(503) == "http_5xx"


def test_fetch_error_pickles_and_reads_well() -> None:
    error = FetchError("http_5xx", "http://h/a.jpg", "HTTP 503", status=503)
    again = pickle.loads(pickle.dumps(error))
    assert (again.reason, again.url, again.detail, again.status) == ("http_5xx", "http://h/a.jpg", "HTTP 503", 503)
    assert str(again) == "http_5xx: http://h/a.jpg (HTTP 503)"
