"""Reading a response body under a size cap, sniffing images from the first bytes."""

from __future__ import annotations

import aiohttp

from sozy.imagetype import sniff_image_type

from .errors import EMPTY_BODY, NOT_AN_IMAGE, TOO_LARGE, FetchError

# Enough bytes for every signature sozy.imagetype knows (WebP needs 12).
SNIFF_BYTES = 16


async def read_body(
    response: aiohttp.ClientResponse, url: str, max_bytes: int, *, image: bool
) -> tuple[bytes, str | None]:
    """The whole body, and its sniffed image type when ``image``.

    The cap is enforced on the bytes as they stream in (after any gzip
    decoding), so a missing or lying Content-Length, or an endless body, stops
    at ``max_bytes``. An image whose first bytes are not an image is dropped
    before the rest is downloaded.
    """
    declared = response.content_length
    if declared is not None and declared > max_bytes and not response.headers.get("Content-Encoding"):
        raise FetchError(TOO_LARGE, url, f"Content-Length {declared} > {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    kind: str | None = None
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(TOO_LARGE, url, f"more than {max_bytes} bytes")
        chunks.append(chunk)
        if image and kind is None and size >= SNIFF_BYTES:
            kind = _sniff(chunks, url)
    if size == 0:
        raise FetchError(EMPTY_BODY, url)
    if image and kind is None:
        kind = _sniff(chunks, url)
    # join() of a single chunk returns it as is: no copy in the common case.
    return b"".join(chunks), kind


def sniff_or_fail(head: bytes, url: str) -> str:
    kind = sniff_image_type(head)
    if kind is None:
        raise FetchError(NOT_AN_IMAGE, url, f"starts with {head[:8]!r}")
    return kind


def _sniff(chunks: list[bytes], url: str) -> str:
    head = chunks[0] if len(chunks[0]) >= SNIFF_BYTES else b"".join(chunks)[:SNIFF_BYTES]
    return sniff_or_fail(head, url)
