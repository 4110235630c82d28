"""Why a fetch failed: one exception with a short, stable reason code.

The crawl state stores ``FetchError.reason`` as the outcome of a URL, so the
codes below are part of Sozy's interface; add new ones, never rename.
"""

from __future__ import annotations

# Remote said no.
ROBOTS_TXT = "robots_txt"  # robots.txt disallows the URL for our token
# robots.txt answered 5xx/429 or was unreachable: the host is off limits for a while (RFC 9309).
ROBOTS_UNAVAILABLE = "robots_unavailable"
X_ROBOTS_TAG = "x_robots_tag"  # the response carried noai / noimageai / noindex / noimageindex / none
# Transport.
TIMEOUT = "timeout"  # connect, read (stall, slow drip) or total timeout fired
CONNECTION = "connection"  # refused, reset, disconnected (after retries)
DNS = "dns"  # the host name does not resolve
TLS = "tls"  # certificate or handshake failure
INCOMPLETE_BODY = "incomplete_body"  # the connection closed before Content-Length bytes came (after retries)
BAD_RESPONSE = "bad_response"  # the server's answer is not valid HTTP (oversized headers, garbage)
# What came back.
TOO_LARGE = "too_large"  # body over max_image_bytes / max_page_bytes (declared or streamed)
NOT_AN_IMAGE = "not_an_image"  # first bytes are no JPEG / PNG / GIF / BMP / WebP
EMPTY_BODY = "empty_body"  # 2xx with no bytes at all
BAD_JSON = "bad_json"  # api_json: the body is not JSON
REDIRECT_LIMIT = "redirect_limit"  # more than max_redirects hops, or a redirect loop
# What we were asked.
BAD_URL = "bad_url"  # unparsable, no host, unsupported scheme (file:// outside image())
FILE_NOT_FOUND = "file_not_found"  # file:// path does not exist
FILE_UNREADABLE = "file_unreadable"  # file:// path is not a regular file, or reading it failed


def http_reason(status: int) -> str:
    """``"http_404"`` for a client error; all server errors share ``"http_5xx"``."""
    return "http_5xx" if 500 <= status <= 599 else f"http_{status}"


class FetchError(Exception):
    """A URL could not be fetched; ``reason`` is a stable short code (see module)."""

    def __init__(self, reason: str, url: str, detail: str = "", status: int | None = None) -> None:
        # All args go to Exception so the error pickles across processes.
        super().__init__(reason, url, detail, status)
        self.reason = reason
        self.url = url
        self.detail = detail
        self.status = status

    def __str__(self) -> str:
        text = f"{self.reason}: {self.url}"
        return f"{text} ({self.detail})" if self.detail else text
