"""The key a photo URL is known by in the crawl state: conservatively normalized.

Only changes that can never point somewhere else are made: scheme and host
lower-cased, the default port and the fragment dropped, an empty path made
``/``. The query is kept exactly as given (order and encoding can matter to
a server), so two spellings of one URL that differ there are two keys; the
content sha256 catches those duplicates later.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_url(url: str) -> str | None:
    """The state key of ``url``; None when it is not an http(s) or file URL."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path:
            return None
        if not parts.path.startswith("/"):  # file:<folder>/<path>, a photo of a crawled folder
            return "file:" + parts.path + (f"?{parts.query}" if parts.query else "")
        return urlunsplit(("file", "", parts.path, parts.query, ""))
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
        host = f"{userinfo}@{host}"
    return urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
