"""What a response's status and headers mean before its body is read: go on, follow a
redirect, try again later, or fail. Pure functions of the response head, for the crawler's
fetcher (where a redirect leads is ``sozy.fetch.redirects``, shared with the API)."""

from __future__ import annotations

from multidict import CIMultiDictProxy
from yarl import URL

from . import errors
from .errors import FetchError, http_reason
from .redirects import BadRedirect, next_hop, redirect_location
from .retry import is_retryable_status, retry_after_seconds
from .robots import x_robots_block


class Redirect(Exception):
    """The response points elsewhere: fetch ``target`` instead."""

    def __init__(self, target: URL) -> None:
        self.target = target


class Retry(Exception):
    """A failure worth another attempt; carries the error to raise if none is left."""

    def __init__(self, error: FetchError, retry_after: float | None = None) -> None:
        self.error = error
        self.retry_after = retry_after

    def refused_wait(self, max_wait_s: float) -> FetchError | None:
        """The error to fail with at once when the server asks for a wait longer than
        ``max_wait_s``; None when its Retry-After (if any) can be honoured."""
        if self.retry_after is None or self.retry_after <= max_wait_s:
            return None
        error = self.error
        return FetchError(
            error.reason,
            error.url,
            f"{error.detail}, Retry-After {self.retry_after:g} s > {max_wait_s:g} s",
            status=error.status,
        )


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
    location = redirect_location(status, headers)
    if location is not None:
        try:
            return Redirect(next_hop(target, location))
        except BadRedirect as exc:
            return FetchError(errors.BAD_URL, url, str(exc))
    error = FetchError(http_reason(status), url, f"HTTP {status}", status=status)
    if status >= 500 and not retry_server_errors:
        return error
    if is_retryable_status(status):
        return Retry(error, retry_after_seconds(headers.get("Retry-After")))
    return error
