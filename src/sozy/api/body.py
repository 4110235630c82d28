"""Read a search request's photo from its body, in memory, never past a size cap.

Three body forms are accepted: ``multipart/form-data`` with the photo in the
field ``image``; JSON ``{"image_base64": ...}`` or ``{"image_url": ...}``; or
the raw photo with an ``image/*`` (or ``application/octet-stream``) type.

The cap is enforced while the body streams in, whatever ``Content-Length``
says (or when there is none, as with chunked uploads), and so are two clocks
(:class:`BodyTimeouts`): a body that pauses too long, or takes too long as a
whole, is answered 408. Multipart is parsed
with python-multipart's low-level streaming parser straight into a
``bytearray``: Starlette's ``request.form()`` would spool large files to a
temporary file, and an uploaded photo must never touch the disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from sozy.api.errors import ApiError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Room for multipart headers and boundaries, or a JSON wrapper, around the photo.
FRAMING_ALLOWANCE = 64 * 1024
MAX_MULTIPART_PARTS = 16
MAX_PART_HEADER_BYTES = 8 * 1024
IMAGE_FIELD = "image"
_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w.+=-]*)*;base64,", re.IGNORECASE)
_BASE64_WHITESPACE = re.compile(rb"[\s]+")


@dataclass(frozen=True, slots=True)
class BodyTimeouts:
    """How long a body may take in all (``total_s``), and pause between chunks (``idle_s``)."""

    total_s: float = 60.0
    idle_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SearchInput:
    """What the client sent: the photo's bytes, or a URL to fetch it from."""

    image: bytes | None = None
    image_url: str | None = None


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the photo is larger than the limit of {limit} bytes")


async def read_search_input(
    request: Request, max_image_bytes: int, timeouts: BodyTimeouts = BodyTimeouts()
) -> SearchInput:
    """Parse the body by its Content-Type; raise :class:`ApiError` for anything unusable."""
    media_type, params = parse_options_header(request.headers.get("content-type"))
    kind = media_type.decode("latin-1")
    if kind == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError(400, "bad_multipart", "multipart/form-data without a boundary")
        return SearchInput(image=await _read_multipart(request, boundary, max_image_bytes, timeouts))
    if kind == "application/json" or kind.endswith("+json"):
        # Base64 inflates by 4/3; the decoded photo is checked against the real limit below.
        body = await read_body(request, (max_image_bytes + 2) // 3 * 4 + FRAMING_ALLOWANCE, max_image_bytes, timeouts)
        return _parse_json(body, max_image_bytes)
    if kind.startswith("image/") or kind == "application/octet-stream":
        return SearchInput(image=await read_body(request, max_image_bytes, max_image_bytes, timeouts))
    shown = kind or "none"
    raise ApiError(
        415,
        "unsupported_media_type",
        f"send the photo as multipart/form-data (field 'image'), JSON, or an image/* body; got Content-Type {shown}",
    )


async def read_body(
    request: Request, limit: int, reported_limit: int, timeouts: BodyTimeouts = BodyTimeouts()
) -> bytes:
    """The whole body, refusing with 413 as soon as more than ``limit`` bytes arrive."""
    _check_content_length(request, limit, reported_limit)
    # Chunks kept as they came and joined once: a growing bytearray over-allocates, and
    # every upload in progress (api.max_uploads of them) holds what it has received so far.
    chunks: list[bytes] = []
    received = 0
    async for chunk in _stream(request, timeouts):
        received += len(chunk)
        if received > limit:
            raise too_large(reported_limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _check_content_length(request: Request, limit: int, reported_limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not (declared.isascii() and declared.isdigit()):
        raise ApiError(400, "bad_content_length", "Content-Length is not a number")
    if int(declared) > limit:
        raise too_large(reported_limit)


async def _stream(request: Request, timeouts: BodyTimeouts) -> AsyncIterator[bytes]:
    deadline = time.monotonic() + timeouts.total_s
    chunks = request.stream()
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, min(timeouts.idle_s, left))):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise _body_timeout(timeouts, idle=left > timeouts.idle_s) from None
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise ApiError(400, "client_disconnected", "the client went away before the body was read") from None
    finally:
        await chunks.aclose()


def _body_timeout(timeouts: BodyTimeouts, *, idle: bool) -> ApiError:
    if idle:
        message = f"the body stopped arriving for {timeouts.idle_s:g} s"
    else:
        message = f"the body took longer than {timeouts.total_s:g} s to arrive"
    return ApiError(408, "body_timeout", message)


class _Silent:
    """Stands in for python-multipart's logger: its warnings quote bytes of the body, which is
    someone's photo; the parse error itself still reaches the client."""

    def _drop(self, *args: object, **kwargs: object) -> None:
        return None

    debug = info = warning = error = exception = _drop


class _ImagePartCollector:
    """python-multipart callbacks that keep only the ``image`` part, in memory, capped."""

    def __init__(self, max_image_bytes: int) -> None:
        self.max_image_bytes = max_image_bytes
        self.image: bytearray | None = None
        self.finished = False
        self._parts = 0
        self._header_bytes = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._in_image = False
        self._current = bytearray()

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_MULTIPART_PARTS:
            raise ApiError(400, "bad_multipart", f"more than {MAX_MULTIPART_PARTS} parts in the form")
        self._header_bytes = 0
        self._disposition = b""
        self._in_image = False
        self._current = bytearray()

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise ApiError(400, "bad_multipart", f"part headers longer than {MAX_PART_HEADER_BYTES} bytes")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition.decode("latin-1"))
        self._in_image = options.get(b"name") == IMAGE_FIELD.encode()
        if self._in_image and self.image is not None:
            raise ApiError(400, "bad_multipart", f"more than one '{IMAGE_FIELD}' field")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_image:
            return  # other fields are ignored, but still count towards the body limit
        if len(self._current) + (end - start) > self.max_image_bytes:
            raise too_large(self.max_image_bytes)
        self._current += data[start:end]

    def on_part_end(self) -> None:
        if self._in_image:
            self.image = self._current
        self._in_image = False

    def on_end(self) -> None:
        self.finished = True


async def _read_multipart(request: Request, boundary: bytes, max_image_bytes: int, timeouts: BodyTimeouts) -> bytes:
    limit = max_image_bytes + FRAMING_ALLOWANCE
    _check_content_length(request, limit, max_image_bytes)
    collector = _ImagePartCollector(max_image_bytes)
    try:
        parser = MultipartParser(boundary, collector.callbacks(), max_header_size=MAX_PART_HEADER_BYTES)
        parser.logger = _Silent()  # type: ignore[assignment]
    except (FormParserError, ValueError) as exc:
        raise ApiError(400, "bad_multipart", f"unusable multipart boundary: {exc}") from None
    received = 0
    async for chunk in _stream(request, timeouts):
        received += len(chunk)
        if received > limit:
            raise too_large(max_image_bytes)
        try:
            parser.write(chunk)
        except (FormParserError, ValueError) as exc:
            raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc}") from None
    parser.finalize()
    if not collector.finished:
        raise ApiError(400, "bad_multipart", "the multipart body ends before its closing boundary")
    if collector.image is None:
        raise ApiError(400, "missing_image", f"the form has no '{IMAGE_FIELD}' field")
    return bytes(collector.image)


def _parse_json(body: bytes, max_image_bytes: int) -> SearchInput:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", 'expected a JSON object: {"image_base64": ...} or {"image_url": ...}')
    has_b64 = "image_base64" in data
    has_url = "image_url" in data
    if has_b64 == has_url:
        raise ApiError(400, "bad_json", 'give exactly one of "image_base64" and "image_url"')
    if has_url:
        url = data["image_url"]
        if not isinstance(url, str) or not url.strip():
            raise ApiError(400, "bad_json", '"image_url" must be a non-empty string')
        if len(url) > 4096:
            raise ApiError(400, "bad_url", "image_url is longer than 4096 characters")
        return SearchInput(image_url=url.strip())
    encoded = data["image_base64"]
    if not isinstance(encoded, str):
        raise ApiError(400, "bad_json", '"image_base64" must be a string')
    return SearchInput(image=decode_base64(encoded, max_image_bytes))


def decode_base64(text: str, max_image_bytes: int) -> bytes:
    """Standard or URL-safe base64, optionally as a ``data:`` URL; whitespace ignored."""
    text = _DATA_URL.sub("", text.lstrip(), count=1)
    try:
        raw = _BASE64_WHITESPACE.sub(b"", text.encode("ascii"))
    except UnicodeEncodeError:
        raise ApiError(400, "bad_base64", "image_base64 contains characters that are not base64") from None
    if b"-" in raw or b"_" in raw:
        raw = raw.translate(bytes.maketrans(b"-_", b"+/"))
    raw += b"=" * (-len(raw) % 4)
    try:
        image = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", "image_base64 is not valid base64") from None
    if len(image) > max_image_bytes:
        raise too_large(max_image_bytes)
    return image
