"""The app behind a real uvicorn: TCP-level behaviour the ASGI transport cannot show."""

from __future__ import annotations

import select
import socket

import httpx

from .index import HELD_OUT


def test_search_over_tcp(live_server, faces_dir):
    photo = (faces_dir / HELD_OUT).read_bytes()
    response = httpx.post(f"{live_server.url}/v1/search", files={"image": ("a.jpg", photo, "image/jpeg")}, timeout=60)
    assert response.status_code == 200
    match = response.json()["faces"][0]["matches"][0]
    assert match["name"] == "obama"
    assert match["image_url"].startswith(live_server.photos.url)


def test_chunked_upload_over_the_limit_is_cut_off_with_413(live_server):
    """Chunked transfer, no Content-Length: the server answers 413 without reading everything."""
    host, port = live_server.url.removeprefix("http://").split(":")
    limit = live_server.settings.api.max_upload_bytes
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/search HTTP/1.1\r\nHost: sozy\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"\xff" * 65536
        sent = 0
        answer = b""
        try:
            while sent < 4 * limit:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                readable, _, _ = select.select([sock], [], [], 0.002)
                if readable:
                    answer += sock.recv(65536)
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except (ConnectionResetError, TimeoutError):
            pass
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert sent < 2 * limit  # refused while the body was still streaming in
