"""uvicorn as configured from the settings: limits set on purpose, forwarded headers only from
the proxies named, oversized headers refused. Real sockets against a real uvicorn."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from sozy.api.server import server_config
from sozy.config import Settings

from .live import AppServer
from .rawhttp import connect, read_response


async def _who(request: Request) -> JSONResponse:
    client = request.client
    return JSONResponse({"client": client.host if client else None, "scheme": request.url.scheme})


def _echo_app() -> Starlette:
    return Starlette(routes=[Route("/who", _who)])


def test_limits_and_timeouts_come_from_the_settings():
    settings = Settings().replace(**{"api.max_connections": 77, "api.keep_alive_s": 3, "api.max_header_bytes": 8192})
    config = server_config(_echo_app(), settings)
    assert (config.limit_concurrency, config.timeout_keep_alive, config.h11_max_incomplete_event_size) == (77, 3, 8192)
    assert config.access_log is False  # the raw path, query included, is never logged
    assert issubclass(config.http, H11Protocol) and config.http.head_timeout_s == 10.0  # type: ignore[arg-type,union-attr]
    assert config.proxy_headers is False  # no proxy is trusted by default


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted():
    spoofed = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    with AppServer(_echo_app(), Settings()) as server:
        seen = httpx.get(f"{server.url}/who", headers=spoofed, timeout=30).json()
    assert seen == {"client": "127.0.0.1", "scheme": "http"}
    trusting = Settings().replace(**{"api.forwarded_allow_ips": ["127.0.0.1"]})
    with AppServer(_echo_app(), trusting) as server:
        seen = httpx.get(f"{server.url}/who", headers=spoofed, timeout=30).json()
    assert seen == {"client": "203.0.113.9", "scheme": "https"}


def test_headers_over_the_limit_are_refused():
    settings = Settings().replace(**{"api.max_header_bytes": 4096})
    with AppServer(_echo_app(), settings) as server, connect(server.url) as sock:
        # A head that keeps growing past the limit (h11 counts what it buffers of an unfinished head).
        sock.sendall(b"GET /who HTTP/1.1\r\nHost: sozy\r\nX-Padding: " + b"a" * 8192)
        answer = read_response(sock)
    assert answer.status == 400


def test_connections_beyond_the_limit_are_answered_503():
    # uvicorn counts the new connection too: at max_connections open, a request is refused.
    settings = Settings().replace(**{"api.max_connections": 3})
    with AppServer(_echo_app(), settings) as server, connect(server.url) as first, connect(server.url) as second:
        first.sendall(b"GET /who HTTP/1.1\r\nHost: sozy\r\n\r\n")
        assert read_response(first).status == 200
        second.sendall(b"GET /who HTTP/1.1\r\nHost: sozy\r\n\r\n")
        assert read_response(second).status == 200
        with connect(server.url) as third:
            third.sendall(b"GET /who HTTP/1.1\r\nHost: sozy\r\n\r\n")
            assert read_response(third).status == 503


def test_a_request_head_trickling_in_is_cut_off():
    """One header byte every 0.2 s keeps uvicorn's keep-alive clock from ever running out;
    api.header_timeout_s (1 s here) closes the connection all the same."""
    settings = Settings().replace(**{"api.header_timeout_s": 1.0})
    head = b"GET /who HTTP/1.1\r\nHost: sozy\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with AppServer(_echo_app(), settings) as server, connect(server.url) as sock:
        sock.settimeout(0.2)
        sent = 0
        closed = False
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                if sock.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
    assert closed, "the server kept a trickling request head open"
    assert sent < len(head)  # cut off before the head was complete


def test_keep_alive_requests_each_get_the_head_clock_afresh():
    settings = Settings().replace(**{"api.header_timeout_s": 1.0})
    with AppServer(_echo_app(), settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(3):
            assert http.get("/who").status_code == 200
