"""The key a photo URL is known by in the crawl state: conservatively normalized.

Only changes that can never point somewhere else are made: scheme and host
lower-cased, the default port and the fragment dropped, an empty path made
``/``. The query is kept exactly as given (order and encoding can matter to
a server), so two spellings of one URL that differ there are two keys; the
content sha256 catches those duplicates later. http(s) URLs are canonicalised by
``sozy.sources.links.normalize_http_url``, the one canonicalisation the crawl uses.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sozy.sources.links import normalize_http_url


def normalize_url(url: str) -> str | None:
    """The state key of ``url``; None when it is not an http(s) or file URL."""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() != "file":
        # A URL given to the crawl keeps its credentials: they may be what opens it.
        return normalize_http_url(text, keep_credentials=True)
    if parts.netloc not in ("", "localhost") or not parts.path:
        return None
    if not parts.path.startswith("/"):  # file:<folder>/<path>, a photo of a crawled folder
        return "file:" + parts.path + (f"?{parts.query}" if parts.query else "")
    return urlunsplit(("file", "", parts.path, parts.query, ""))
