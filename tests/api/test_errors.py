"""Every error status a client can cause, each as JSON {"error": {"code", "message"}}."""

from __future__ import annotations

import asyncio
import base64

import pytest

from .images import landscape, pixel_bomb, truncated
from .index import HELD_OUT


def error_of(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return body["error"]["code"]


@pytest.mark.parametrize(
    "query",
    ["k=0", "k=51", "k=abc", "k=-1", "k=1.5", "k=", "per_person=0", "per_person=11", "faces=some", "k=99999999999999"],
)
async def test_bad_query_parameters_are_400(api_client, faces_dir, query):
    async with api_client() as client:
        response = await client.post(
            f"/v1/search?{query}", content=(faces_dir / HELD_OUT).read_bytes(), headers={"Content-Type": "image/jpeg"}
        )
    assert response.status_code == 400
    assert error_of(response) == "bad_parameter"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "bad_json"),
        ({"json": ["image_base64", "x"]}, "bad_json"),
        ({"json": {}}, "bad_json"),
        ({"json": {"image_base64": "QUJD", "image_url": "http://example.org/a.jpg"}}, "bad_json"),
        ({"json": {"image_base64": 12}}, "bad_json"),
        ({"json": {"image_url": ["http://example.org"]}}, "bad_json"),
        ({"json": {"image_url": ""}}, "bad_json"),
        ({"json": {"image_base64": "not base64!!"}}, "bad_base64"),
        ({"json": {"image_base64": "QUJDR"}}, "bad_base64"),
        ({"json": {"image_base64": "ÄÖÜ"}}, "bad_base64"),
        ({"json": {"image_base64": ""}}, "empty_image"),
        ({"json": {"image_url": "ftp://example.org/a.jpg"}}, "bad_url"),
        ({"json": {"image_url": "not a url"}}, "bad_url"),
        ({"json": {"image_url": "http://user:pw@example.org/a.jpg"}}, "bad_url"),
        ({"content": b"", "headers": {"Content-Type": "image/jpeg"}}, "empty_image"),
        ({"files": {"other": ("a.jpg", b"abc", "image/jpeg")}}, "missing_image"),
        ({"content": b"--x\r\n", "headers": {"Content-Type": "multipart/form-data"}}, "bad_multipart"),
        ({"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}}, "bad_multipart"),
        ({"content": b"1", "headers": {"Content-Type": "image/jpeg", "Content-Length": "abc"}}, "bad_content_length"),
    ],
)
async def test_bad_bodies_are_400(api_client, kwargs, code):
    async with api_client() as client:
        response = await client.post("/v1/search", **kwargs)
    assert response.status_code == 400, response.text
    assert error_of(response) == code


async def test_truncated_multipart_is_400(api_client, faces_dir):
    boundary = "sozyboundary"
    photo = (faces_dir / HELD_OUT).read_bytes()
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + photo[:5000]
    async with api_client() as client:
        response = await client.post(
            "/v1/search", content=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
    assert response.status_code == 400
    assert error_of(response) == "bad_multipart"


LIMIT = 256 * 1024


async def test_too_large_by_content_length(api_client):
    async with api_client(**{"api.max_upload_bytes": LIMIT}) as client:
        response = await client.post(
            "/v1/search", content=b"\xff\xd8\xff" + b"\0" * LIMIT, headers={"Content-Type": "image/jpeg"}
        )
        multipart = await client.post(
            "/v1/search", files={"image": ("a.jpg", b"\xff\xd8\xff" + b"\0" * (LIMIT + 70_000), "image/jpeg")}
        )
        encoded = base64.b64encode(b"\xff\xd8\xff" + b"\0" * (LIMIT + 10)).decode()
        as_json = await client.post("/v1/search", json={"image_base64": encoded})
    for r in (response, multipart, as_json):
        assert r.status_code == 413, r.text
        assert error_of(r) == "too_large"


async def test_multipart_image_part_over_the_limit_is_413_even_within_the_framing_allowance(api_client):
    async with api_client(**{"api.max_upload_bytes": LIMIT}) as client:
        response = await client.post(
            "/v1/search", files={"image": ("a.jpg", b"\xff\xd8\xff" + b"\0" * LIMIT, "image/jpeg")}
        )
    assert response.status_code == 413
    assert error_of(response) == "too_large"


@pytest.mark.parametrize("content_type", ["image/jpeg", "multipart/form-data; boundary=b", "application/json"])
async def test_too_large_is_enforced_while_streaming_without_content_length(api_client, content_type):
    """A chunked body with no Content-Length: the app stops reading soon after the limit."""
    sent = 0
    chunk = b"\xff\xd8\xff" + b"\0" * (64 * 1024 - 3)
    if content_type.startswith("multipart"):
        first = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    elif content_type == "application/json":
        first = b'{"image_base64": "'
        chunk = b"A" * len(chunk)
    else:
        first = b""

    async def endless():
        nonlocal sent
        sent += len(first)
        yield first
        for _ in range(2000):  # 128 MiB if nobody stops reading
            sent += len(chunk)
            yield chunk

    async with api_client(**{"api.max_upload_bytes": LIMIT}) as client:
        response = await client.post("/v1/search", content=endless(), headers={"Content-Type": content_type})
    assert response.status_code == 413
    assert error_of(response) == "too_large"
    assert sent <= LIMIT * 4 // 3 + 64 * 1024 + 2 * len(chunk)


async def test_pixel_bomb_is_413(api_client):
    bomb = pixel_bomb()
    assert len(bomb) < 100_000
    async with api_client() as client:
        response = await client.post("/v1/search", content=bomb, headers={"Content-Type": "image/png"})
    assert response.status_code == 413
    assert error_of(response) == "too_many_pixels"


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"<html><body>hello</body></html>", "image/jpeg", "not_an_image"),
        (b"%PDF-1.4 not a photo", "application/octet-stream", "not_an_image"),
        (b"\xff\xd8\xff\xe0" + b"\x13" * 2000, "image/jpeg", "corrupt_image"),
        (b"plain text", "text/plain", "unsupported_media_type"),
        (b"x", "", "unsupported_media_type"),
    ],
)
async def test_not_an_image_is_415(api_client, body, content_type, code):
    async with api_client() as client:
        response = await client.post("/v1/search", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 415, response.text
    assert error_of(response) == code


async def test_truncated_photo_is_415(api_client, faces_dir):
    async with api_client() as client:
        response = await client.post(
            "/v1/search", files={"image": ("a.jpg", truncated((faces_dir / HELD_OUT).read_bytes(), 0.02), "image/jpeg")}
        )
    assert response.status_code == 415
    assert error_of(response) == "corrupt_image"


async def test_photo_without_a_face_is_422(api_client):
    async with api_client() as client:
        response = await client.post("/v1/search", files={"image": ("sky.jpg", landscape(), "image/jpeg")})
    assert response.status_code == 422
    assert error_of(response) == "no_face"


async def test_rate_limit_is_429_per_client(api_client):
    async with api_client(**{"api.rate_limit_per_minute": 3}) as client:
        statuses = [(await client.get("/v1/stats")).status_code for _ in range(4)]
        limited = await client.post("/v1/search", content=b"x", headers={"Content-Type": "image/jpeg"})
        health = await client.get("/healthz")
    assert statuses == [200, 200, 200, 429]
    assert limited.status_code == 429
    assert error_of(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert health.status_code == 200  # only the /v1/ API is limited
    async with api_client(**{"api.rate_limit_per_minute": 3}, client=("10.1.2.3", 4000)) as other:
        assert (await other.get("/v1/stats")).status_code == 200


async def test_overload_is_503_with_retry_after(api_client, faces_dir):
    """queue_limit 1: while one search holds the engine, the others are refused at once."""
    photo = (faces_dir / "obama/obama3.jpg").read_bytes()  # a big photo: a slow search
    async with api_client(**{"api.queue_limit": 1}) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/search", files={"image": ("a.jpg", photo, "image/jpeg")}) for _ in range(6))
        )
        after = await client.post("/v1/search", files={"image": ("a.jpg", photo, "image/jpeg")})
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 1
    assert statuses.count(503) >= 4
    refused = next(r for r in responses if r.status_code == 503)
    assert error_of(refused) == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert after.status_code == 200  # the queue drains; nothing stays stuck


async def test_unknown_route_and_wrong_method_are_json(api_client):
    async with api_client() as client:
        missing = await client.get("/v1/nothing-here")
        wrong = await client.get("/v1/search")
        face = await client.get("/v1/faces/not-a-uuid")
        unknown = await client.get("/v1/faces/6f1d9a3e-5b1c-4c7e-9a52-3c0f5d7e8b21")
    assert missing.status_code == 404 and error_of(missing) == "not_found"
    assert wrong.status_code == 405 and error_of(wrong) == "method_not_allowed"
    assert face.status_code == 404 and error_of(face) == "not_found"
    assert unknown.status_code == 404 and error_of(unknown) == "not_found"
