"""Thousands of malformed requests: every answer is a JSON 4xx (or a 200), never a 5xx."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections import Counter
from collections.abc import Callable
from urllib.parse import quote_from_bytes

import pytest

from sozy.api.remote import RemoteImages

from .dns import MapResolver
from .index import HELD_OUT

REQUESTS = 3000
SEED = 20240605
Request = dict


def as_json(body: object) -> Request:
    # json.dumps escapes lone surrogates as \udxxx: valid JSON that no client library would send.
    return {"content": json.dumps(body).encode(), "headers": {"Content-Type": "application/json"}}


def _multipart(boundary: str, parts: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for headers, payload in parts:
        out += b"--" + boundary.encode() + b"\r\n" + headers + b"\r\n\r\n" + payload + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n"


def _image_part(photo: bytes, name: bytes = b"image") -> tuple[bytes, bytes]:
    return b'Content-Disposition: form-data; name="' + name + b'"; filename="a.jpg"\r\nContent-Type: image/jpeg', photo


class Malformed:
    """Generators of broken requests; each returns httpx.request keyword arguments."""

    def __init__(self, rng: random.Random, photo: bytes) -> None:
        self.rng = rng
        self.photo = photo

    def junk(self, low: int = 0, high: int = 2000) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    def text(self, low: int = 0, high: int = 200) -> str:
        alphabet = "abcXYZ019+/=-_ \n\t\"'{}[]:,\\é€😀\u0000\ud800"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(low, high)))

    def truncated_multipart(self) -> Request:
        body = _multipart("bnd", [_image_part(self.photo)])
        cut = self.rng.randint(0, len(body) - 1)
        return {"content": body[:cut], "headers": {"Content-Type": "multipart/form-data; boundary=bnd"}}

    def wrong_boundary(self) -> Request:
        body = _multipart(self.rng.choice(["bnd", "other", "", "a" * 80]), [_image_part(self.photo[:3000])])
        boundary = self.rng.choice(["xyz", "bnd ", '"bnd', "b" * 300, "", "bnd; charset=x", "\u00e9"])
        return {
            "content": body,
            "headers": {"Content-Type": f"multipart/form-data; boundary={boundary}".encode()},
        }

    def huge_names(self) -> Request:
        name = self.rng.choice([b"image" * 5000, b"x" * 20000, b"\xff" * 9000, b'image"; filename="' * 100])
        headers = b'Content-Disposition: form-data; name="' + name + b'"'
        if self.rng.random() < 0.5:
            headers += b"\r\nX-Long: " + b"v" * self.rng.randint(1000, 20000)
        body = _multipart("bnd", [(headers, self.junk(0, 500))])
        return {"content": body, "headers": {"Content-Type": "multipart/form-data; boundary=bnd"}}

    def odd_parts(self) -> Request:
        parts = []
        for _ in range(self.rng.randint(0, 40)):
            kind = self.rng.randint(0, 5)
            if kind == 0:
                parts.append((b"Content-Disposition: form-data", self.junk(0, 50)))  # no name
            elif kind == 1:
                parts.append((b"Content-Disposition: form-data; name*=utf-8''image", self.junk(0, 50)))
            elif kind == 2:
                parts.append(_image_part(self.junk(0, 300)))
            elif kind == 3:
                parts.append((b"", b""))
            elif kind == 4:
                parts.append(
                    (
                        b"Content-Disposition: form-data; name=image\r\nContent-Type: multipart/mixed; boundary=in",
                        _multipart("in", [_image_part(b"x")]),
                    )
                )
            else:
                parts.append((self.junk(1, 100).replace(b"\r\n", b""), self.junk(0, 100)))
        return {"content": _multipart("bnd", parts), "headers": {"Content-Type": "multipart/form-data; boundary=bnd"}}

    def bad_json(self) -> Request:
        choices: list[Callable[[], bytes]] = [
            lambda: self.junk(),
            lambda: json.dumps({"image_base64": base64.b64encode(self.photo).decode()})[
                : self.rng.randint(0, 3000)
            ].encode(),
            lambda: b"[" * self.rng.randint(1000, 200_000),
            lambda: b'{"image_url": ' * self.rng.randint(1, 5000),
            lambda: self.text().encode("utf-8", "surrogatepass"),
            lambda: b'{"image_base64": "\\ud800\\udfff\\u0000"}',
            lambda: b'{"image_url": "\\ud800"}',
            lambda: b'{"image_url": "http://\\ud800.example/"}',
            lambda: b"NaN",
            lambda: b'{"image_base64": 1e999}',
            lambda: b"\xef\xbb\xbf{}",
            lambda: b'{"image_base64": "' + b"A" * self.rng.randint(0, 10) + b'"}',
        ]
        return {
            "content": self.rng.choice(choices)(),
            "headers": {
                "Content-Type": self.rng.choice(
                    ["application/json", "application/problem+json", "application/json; charset=latin-1"]
                )
            },
        }

    def wrong_types(self) -> Request:
        value = self.rng.choice([None, 1, -1.5, True, [], {}, ["a"], {"a": 1}, "", " ", "x" * 5000, 10**40])
        key = self.rng.choice(["image_base64", "image_url", "image", "", "IMAGE_URL"])
        body: object = {key: value}
        if self.rng.random() < 0.3:
            body = self.rng.choice([[body], "string", 42, None, True])
        return as_json(body)

    def bad_base64(self) -> Request:
        encoded = base64.b64encode(self.photo[: self.rng.randint(0, 4000)]).decode()
        mutations = [
            lambda s: s[: self.rng.randint(0, len(s))],
            lambda s: s.replace("A", "*"),
            lambda s: "data:image/jpeg;base64," + s + "===",
            lambda s: "data:;base64," + self.text(),
            lambda s: self.text(),
            lambda s: s + "\u00e9",
            lambda s: "=" * self.rng.randint(1, 100),
        ]
        return as_json({"image_base64": self.rng.choice(mutations)(encoded)})

    def bad_urls(self) -> Request:
        url = self.rng.choice(
            [
                self.text(),
                "http://",
                "https://[::1",
                "http://[zz::1]/",
                "http://example.com:99999/",
                "http://-/",
                "http://a b/",
                "file:///etc/passwd",
                "data:image/png;base64,AAAA",
                "http://%00/",
                "http://256.256.256.256/",
                "http://0x7f.1/",
                "http://[::ffff:a00:1]/",
                "http://:80/",
                "javascript:alert(1)",
                "http://" + "a" * 300 + ".com/",
            ]
        )
        return as_json({"image_url": url})

    def random_bytes_as_image(self) -> Request:
        head = self.rng.choice([b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP"])
        return {
            "content": head + self.junk(0, 3000),
            "headers": {
                "Content-Type": self.rng.choice(
                    ["image/jpeg", "image/png", "application/octet-stream", "image/whatever"]
                )
            },
        }

    def odd_headers_and_queries(self) -> Request:
        content_type = self.rng.choice(
            [
                "",
                "text/plain",
                "multipart/mixed",
                "multipart/form-data; boundary",
                "image",
                "*/*",
                "\x00",
                "application/x-www-form-urlencoded",
                "Multipart/Form-Data; BOUNDARY=bnd",
            ]
        )
        request: Request = {
            "content": _multipart("bnd", [_image_part(self.photo[:2000])]),
            "headers": {"Content-Type": content_type},
        }
        if self.rng.random() < 0.5:
            value = quote_from_bytes(self.text(0, 20).encode("utf-8", "surrogatepass"))
            request["query"] = f"?{self.rng.choice(['k', 'per_person', 'faces', 'x'])}={value}"
        if self.rng.random() < 0.2:
            request["headers"]["Content-Length"] = self.rng.choice(["-1", "1e9", "99999999999999999999", " 5", "0x10"])
        return request

    def one(self) -> Request:
        makers = [
            self.truncated_multipart,
            self.wrong_boundary,
            self.huge_names,
            self.odd_parts,
            self.bad_json,
            self.wrong_types,
            self.bad_base64,
            self.bad_urls,
            self.random_bytes_as_image,
            self.odd_headers_and_queries,
        ]
        return self.rng.choice(makers)()


async def post(client, request: Request):
    extra = dict(request)
    return await client.post("/v1/search" + extra.pop("query", ""), **extra)


@pytest.mark.slow
async def test_thousands_of_malformed_requests_never_get_a_5xx(api_client, faces_dir):
    rng = random.Random(SEED)
    malformed = Malformed(rng, (faces_dir / HELD_OUT).read_bytes())
    requests = [malformed.one() for _ in range(REQUESTS)]
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    # No real DNS: fuzzed host names resolve to nothing, at once.
    fetcher = RemoteImages(max_bytes=1024 * 1024, timeout_s=2, resolver=MapResolver({}))
    async with api_client(remote=fetcher, **{"api.max_upload_bytes": 1024 * 1024}) as client:
        for start in range(0, len(requests), 16):
            batch = requests[start : start + 16]
            responses = await asyncio.gather(*(post(client, r) for r in batch))
            for request, response in zip(batch, responses, strict=False):
                statuses[response.status_code] += 1
                assert response.status_code < 500, (request, response.text)
                if response.status_code >= 400:
                    error = response.json()["error"]
                    assert isinstance(error["code"], str) and isinstance(error["message"], str)
                    codes[error["code"]] += 1
    assert sum(statuses.values()) == REQUESTS
    # The generators reach every stage: body parsing, JSON, base64, URLs and the engine.
    for code in ("bad_multipart", "bad_json", "bad_base64", "bad_url", "not_an_image", "unsupported_media_type"):
        assert codes[code] > 10, codes
