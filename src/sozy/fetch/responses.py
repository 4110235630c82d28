"""What a response's status and headers mean before its body is read: go on, follow a
redirect, try again later, or fail. Pure functions of the response head, shared by the
crawler's fetcher and the API's fetch of an ``image_url``."""

from __future__ import annotations

from multidict import CIMultiDictProxy
from yarl import URL

from . import errors
from .errors import FetchError, http_reason
from .retry import is_retryable_status, retry_after_seconds
from .robots import x_robots_block

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class Redirect(Exception):
    """The response points elsewhere: fetch ``target`` instead."""

    def __init__(self, target: URL) -> None:
        self.target = target


class Retry(Exception):
    """A failure worth another attempt; carries the error to raise if none is left."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after


def join_location(base: URL, location: str) -> URL:
    """A ``Location`` header resolved against the URL that sent it (ValueError if it does not parse)."""
    try:
        return base.join(URL(location))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def redirect_target(url: str, target: URL, location: str) -> URL:
    """Where a redirect from ``target`` leads, if it is an http(s) URL with a host (else FetchError)."""
    try:
        hop = join_location(target, location)
    except ValueError as exc:
        raise FetchError(errors.BAD_URL, url, f"bad redirect {location!r}: {exc}") from None
    if hop.scheme not in ("http", "https") or not hop.host:
        raise FetchError(errors.BAD_URL, url, f"redirect to {location!r}")
    return hop


def refusal(
    url: str,
    target: URL,
    status: int,
    headers: CIMultiDictProxy[str],
    *,
    robots_token: str | None,
    retry_server_errors: bool,
) -> Exception | None:
    """Why this response's body will not be read, or None: a ``Redirect``, a ``Retry``, or a
    FetchError (an error status; X-Robots-Tag forbidding ``robots_token``, when one is given)."""
    if 200 <= status < 300:
        if robots_token is not None:
            tags = headers.getall("X-Robots-Tag", ())
            if tags:
                directive = x_robots_block(tags, robots_token)
                if directive is not None:
                    return FetchError(errors.X_ROBOTS_TAG, url, directive)
        return None
    if status in REDIRECT_STATUSES:
        location = headers.get("Location")
        if location:
            return Redirect(redirect_target(url, target, location))
    error = FetchError(http_reason(status), url, f"HTTP {status}", status=status)
    if status >= 500 and not retry_server_errors:
        return error
    if is_retryable_status(status):
        return Retry(error, retry_after_seconds(headers.get("Retry-After")))
    return error
