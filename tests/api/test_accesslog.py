"""The access log: method, route template, status and time; never a query string, header or body."""

from __future__ import annotations

import logging

import httpx

from .conftest import ADMIN_KEY


def test_access_log_has_the_route_and_never_the_query(guarded_server, caplog):
    secret = "token=s3cr3t-0f-a-user"
    with caplog.at_level(logging.DEBUG):
        deleted = httpx.delete(
            f"{guarded_server.url}/v1/faces",
            params={"image_url": f"https://photos.example/me.jpg?{secret}"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=60,
        )
        missing = httpx.get(f"{guarded_server.url}/v1/faces/not-a-face?{secret}", timeout=60)
        searched = httpx.post(
            f"{guarded_server.url}/v1/search?k=3&{secret}",
            content=b"GIF89a-not-really",
            headers={"Content-Type": "image/gif"},
            timeout=60,
        )
    assert (deleted.status_code, missing.status_code, searched.status_code) == (200, 404, 415)
    access = [r.getMessage() for r in caplog.records if r.name == "sozy.api.access"]
    assert any(line.startswith("DELETE /v1/faces 200 ") and line.endswith("ms") for line in access), access
    assert any(line.startswith("GET /v1/faces/{id} 404 ") for line in access), access
    assert any(line.startswith("POST /v1/search 415 ") for line in access), access
    # What the server wrote (the test's own httpx client logs its URLs, query and all).
    everything = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("sozy", "uvicorn")))
    assert "s3cr3t" not in everything
    assert "photos.example" not in everything
    assert "GIF89a" not in everything
