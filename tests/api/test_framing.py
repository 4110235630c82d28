"""HTTP framing over raw sockets: no smuggling past the server, no request after an unread body."""

from __future__ import annotations

import httpx

from .rawhttp import connect, parse_responses, read_until_closed


def test_content_length_with_transfer_encoding_is_refused_and_closed(guarded_server):
    """The classic smuggling shape: a proxy framing by Content-Length would forward the
    second request inside the first one's body; the server must run neither."""
    smuggled = b"GET /v1/stats HTTP/1.1\r\nHost: sozy\r\n\r\n"
    request = (
        b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: image/jpeg\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (5 + len(smuggled))
    ) + smuggled
    with connect(guarded_server.url) as sock:
        sock.sendall(request)
        raw, closed = read_until_closed(sock)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [400]
    assert b"bad_framing" in responses[0].body
    assert responses[0].headers["connection"] == "close"
    assert closed


def test_a_request_after_an_unread_body_never_runs(guarded_server):
    """415 is decided from the headers, before the body is read: the connection then closes,
    so what the client sent after the body is never taken for a next request."""
    body = b"x" * 300
    request = (
        (
            b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        + body
        + b"GET /v1/stats HTTP/1.1\r\nHost: sozy\r\n\r\n"
    )
    with connect(guarded_server.url) as sock:
        sock.sendall(request)
        raw, closed = read_until_closed(sock)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [415]
    assert responses[0].headers["connection"] == "close"
    assert closed


def test_pipelined_requests_without_bodies_are_still_served(guarded_server):
    """Closing is for unread bodies only: plain keep-alive and pipelining keep working."""
    request = (
        b"GET /healthz HTTP/1.1\r\nHost: sozy\r\n\r\n" * 2
        + b"GET /healthz HTTP/1.1\r\nHost: sozy\r\nConnection: close\r\n\r\n"
    )
    with connect(guarded_server.url) as sock:
        sock.sendall(request)
        raw, closed = read_until_closed(sock)
    assert [r.status for r in parse_responses(raw)] == [200, 200, 200]
    assert closed


def test_json_responses_say_nosniff(guarded_server):
    for path in ("/healthz", "/v1/stats", "/openapi.json", "/no/such/route"):
        response = httpx.get(guarded_server.url + path, timeout=60)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["content-type"].startswith("application/json"), path


def test_headers_over_the_limit_are_refused_even_when_they_arrive_at_once(guarded_server):
    """h11 bounds only a head still arriving; a 40 KB head in one read is refused by the app (431)."""
    request = b"GET /v1/stats HTTP/1.1\r\nHost: sozy\r\n" + b"X-Pad: " + b"a" * 40000 + b"\r\n\r\n"
    with connect(guarded_server.url) as sock:
        sock.sendall(request)
        raw, _closed = read_until_closed(sock)
    responses = parse_responses(raw)
    assert [r.status for r in responses] == [431]
    assert b"headers_too_large" in responses[0].body
