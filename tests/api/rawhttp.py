"""A hostile HTTP client on raw sockets: bytes out exactly as written, responses parsed by hand.

httpx would fix up what these tests send on purpose (two framing headers, a
pipelined request, a body that stalls), so they talk TCP directly.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def connect(url: str, timeout: float = 30.0, source: str | None = None) -> socket.socket:
    sock = socket.create_connection(address(url), timeout=timeout, source_address=(source, 0) if source else None)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 30.0) -> tuple[bytes, bool]:
    """Everything the server sends until it closes (True) or goes quiet for ``timeout`` (False)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, True
            data += chunk
    except TimeoutError:
        return data, False
    except ConnectionResetError:
        return data, True


def read_response(sock: socket.socket, timeout: float = 30.0) -> RawResponse:
    """One response (Content-Length framed, as every sozy response is)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole response head: {data!r}")
        data += chunk
    parsed = parse_responses(data, partial=True)
    head = parsed[0]
    length = int(head.headers.get("content-length", "0"))
    while len(head.body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head.body += chunk
    return head


def parse_responses(data: bytes, partial: bool = False) -> list[RawResponse]:
    """Every response in ``data`` (pipelined responses follow each other)."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"not an HTTP response: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        responses.append(RawResponse(status, headers, rest[:length]))
        if partial:
            return responses
        data = rest[length:]
    return responses


def drip(sock: socket.socket, payload: bytes, every_s: float, limit: int) -> RawResponse | None:
    """Send ``payload`` one byte per ``every_s`` (at most ``limit`` bytes), stopping when an answer arrives."""
    sock.settimeout(every_s)
    for i in range(min(limit, len(payload))):
        try:
            sock.sendall(payload[i : i + 1])
        except (BrokenPipeError, ConnectionResetError):
            break
        try:
            peek = sock.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            continue
        if peek:
            break
    else:
        return None
    try:
        return read_response(sock)
    except ConnectionError:
        return None


def wait_for(condition, what: str, attempts: int = 600, every_s: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition()`` until it is true: the server's state, not a guessed delay."""
    for _ in range(attempts):
        if condition():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
