"""Uploads stay in memory and out of the logs."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from starlette.requests import Request

from sozy.api.body import decode_base64
from sozy.api.errors import ApiError

from .index import HELD_OUT

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_TMPFILE", 0)
_opened: list[tuple[str, object]] | None = None


def _audit(event: str, args: tuple) -> None:
    # Audit hooks cannot be removed: this one only records while a test asks it to.
    if _opened is None or event != "open":
        return
    path, mode, flags = args
    writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
        isinstance(flags, int) and flags & _WRITE_FLAGS
    )
    if writes:
        _opened.append((str(path), mode))


sys.addaudithook(_audit)


@contextmanager
def files_opened_for_writing() -> Iterator[list[tuple[str, object]]]:
    """Every file this process opens for writing (temporary files included) inside the block."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


def multipart(boundary: str, payload: bytes) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="me.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode()


async def test_the_detector_sees_starlettes_spooled_upload(tmp_path):
    """Starlette's own form parser spools uploads over 1 MiB to a temporary file: the hook must notice."""
    body = multipart("b", b"\xff\xd8\xff" + b"\0" * (3 * 1024 * 1024))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": [
            (b"content-type", b"multipart/form-data; boundary=b"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]

    async def receive():
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    with files_opened_for_writing() as opened:
        form = await Request(scope, receive).form()
        await form.close()
    assert opened, "the audit hook did not see Starlette's temporary file"


async def test_a_large_upload_never_touches_the_disk(api_client, faces_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # A real photo with 8 MiB of padding after its end: decoders ignore it, the body parser must not.
    photo = (faces_dir / HELD_OUT).read_bytes() + b"\0" * (8 * 1024 * 1024)
    async with api_client() as client:
        with files_opened_for_writing() as opened:
            response = await client.post(
                "/v1/search",
                content=multipart("sozy", photo),
                headers={"Content-Type": "multipart/form-data; boundary=sozy"},
            )
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["matches"][0]["name"] == "obama"
    assert opened == []
    assert list(tmp_path.iterdir()) == []


async def test_uploads_are_not_logged(api_client, caplog):
    marker = b"SOZY-PRIVATE-MARKER-4242"
    body = b"\xff\xd8\xff\xe0" + marker * 100
    caplog.set_level(logging.DEBUG)
    async with api_client() as client:
        corrupt = await client.post("/v1/search", content=body, headers={"Content-Type": "image/jpeg"})
        not_image = await client.post("/v1/search", content=marker * 10, headers={"Content-Type": "image/jpeg"})
        as_json = await client.post("/v1/search", json={"image_base64": marker.decode()})
    assert corrupt.status_code == 415 and not_image.status_code == 415 and as_json.status_code in (400, 415)
    assert caplog.records, "nothing was logged at all: the check would be empty"
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert marker.decode() not in text


def test_decode_base64_forms():
    assert decode_base64("QUJD", 10) == b"ABC"
    assert decode_base64("QUI", 10) == b"AB"  # missing padding is forgiven
    assert decode_base64("data:image/png;base64,QUJD", 10) == b"ABC"
    assert decode_base64("Q U\nJ D", 10) == b"ABC"
    assert decode_base64("-_8=", 10) == b"\xfb\xff"  # URL-safe alphabet
    for bad in ("Q", "QUJD!", "data:image/png;base64,@@@", "é"):
        with pytest.raises(ApiError) as caught:
            decode_base64(bad, 10)
        assert caught.value.status == 400
    with pytest.raises(ApiError) as caught:
        decode_base64("QUJDREVG", 5)
    assert caught.value.status == 413
