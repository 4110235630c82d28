"""One HTTP request of a fetch: send it, judge the response head, read the body under its
cap, and turn aiohttp's failures into ``FetchError`` codes (or a ``Retry``).

The caller holds the slots, follows redirects and retries; this module does one round trip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from . import errors
from .body import read_body
from .errors import FetchError
from .fetched import Fetched
from .responses import Redirect, Retry, refusal

# No AVIF/JPEG XL in Accept: content-negotiating CDNs would send formats the
# sniffer and the face engine cannot read.
IMAGE_ACCEPT = "image/webp,image/jpeg,image/png,image/gif,image/bmp;q=0.9,*/*;q=0.5"
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"
API_ACCEPT = "application/json,application/sparql-results+json;q=0.9,*/*;q=0.5"
# API answers (a SPARQL result of 100k people) can be far larger than a page.
API_MAX_BYTES = 256 * 1024 * 1024
# Error and redirect bodies up to this size are read so the connection can be reused.
DRAIN_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RequestKind:
    """How one kind of request is made and checked."""

    name: str  # counter key: "image", "page", "api"
    max_bytes: int
    accept: str
    robots: bool  # robots.txt and X-Robots-Tag apply (API endpoints are not crawled pages)
    image: bool  # sniff the body
    timeout: aiohttp.ClientTimeout | None = None  # None: the session's


def request_headers(
    agent: str, kind: RequestKind, referer: str | None, extra: Mapping[str, str] | None
) -> Mapping[str, str]:
    """User-Agent, Accept, Referer, then the caller's own headers."""
    # A CIMultiDict spares aiohttp one conversion per request.
    headers = CIMultiDict({"User-Agent": agent, "Accept": kind.accept})
    if referer:
        headers["Referer"] = referer
    if extra:
        headers.update(extra)
    return headers


async def request_once(
    session: aiohttp.ClientSession,
    url: str,
    final_url: str,
    target: URL,
    kind: RequestKind,
    headers: Mapping[str, str],
    *,
    timeout: aiohttp.ClientTimeout | None,
    robots_token: str | None,
    retry_server_errors: bool,
) -> Fetched:
    """GET ``target`` once, without following redirects.

    Raises ``Redirect`` (follow it), ``Retry`` (ask again later) or ``FetchError``.
    ``robots_token``: check X-Robots-Tag for this token (None: don't).
    """
    try:
        async with session.get(
            target, headers=headers, allow_redirects=False, timeout=kind.timeout or timeout
        ) as response:
            refused = refusal(
                url,
                target,
                response.status,
                response.headers,
                robots_token=robots_token,
                retry_server_errors=retry_server_errors,
            )
            if refused is not None:
                if not isinstance(refused, FetchError) or refused.reason != errors.X_ROBOTS_TAG:
                    await _drain(response)
                raise refused
            body, image_type = await read_body(response, url, kind.max_bytes, image=kind.image)
    except (FetchError, Redirect, Retry):
        raise
    except _TRANSPORT_ERRORS as exc:
        raise transport_failure(exc, url) from None
    response_headers = response.headers
    return Fetched(
        url=url,
        final_url=final_url,
        status=response.status,
        content_type=response_headers.get("Content-Type"),
        body=body,
        headers=response_headers,
        image_type=image_type,
    )


_TRANSPORT_ERRORS = (
    TimeoutError,
    aiohttp.ClientConnectorDNSError,
    aiohttp.ClientConnectorCertificateError,
    aiohttp.ClientSSLError,
    aiohttp.ClientPayloadError,
    aiohttp.ClientResponseError,
    aiohttp.ClientConnectionError,
    OSError,
    aiohttp.InvalidURL,
    ValueError,
)


def transport_failure(exc: BaseException, url: str) -> FetchError | Retry:
    """What a failed round trip means: a FetchError, or a Retry for a connection that broke.

    The first matching class decides (aiohttp's DNS and TLS errors are connection errors too).
    """
    if isinstance(exc, TimeoutError):  # also aiohttp's connect / read timeouts
        return FetchError(errors.TIMEOUT, url, type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchError(errors.DNS, url, str(exc))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return FetchError(errors.TLS, url, str(exc))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Retry(FetchError(errors.INCOMPLETE_BODY, url, str(exc)))
    if isinstance(exc, aiohttp.ClientResponseError):  # unparsable response
        return FetchError(errors.BAD_RESPONSE, url, exc.message)
    if isinstance(exc, aiohttp.ClientConnectionError | OSError):
        return Retry(FetchError(errors.CONNECTION, url, str(exc) or type(exc).__name__))
    return FetchError(errors.BAD_URL, url, str(exc))


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a small error or redirect body so its connection can be reused."""
    length = response.content_length
    if length is not None and length <= DRAIN_MAX_BYTES:
        # On failure the connection is closed instead; the status is what matters.
        with contextlib.suppress(TimeoutError, aiohttp.ClientError):
            await response.read()
