"""URL handling for HTML sources: resolving references and telling sites apart."""

from __future__ import annotations

import ipaddress
from functools import cache
from urllib.parse import urljoin, urlsplit, urlunsplit

from publicsuffixlist import PublicSuffixList

HTTP_SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Browsers drop these from URLs before parsing them.
_STRIP_CHARS = " \t\n\r\f"


@cache
def _suffix_list() -> PublicSuffixList:
    # Built once: parsing the bundled list takes ~50 ms.
    return PublicSuffixList()


def resolve_http_url(base: str, ref: str | None) -> str | None:
    """``ref`` resolved against ``base``, fragment removed; None unless http(s).

    ``data:``, ``javascript:``, ``mailto:`` and other schemes give None, as do
    references that do not parse.
    """
    if ref is None:
        return None
    ref = ref.strip(_STRIP_CHARS).replace("\t", "").replace("\n", "").replace("\r", "")
    if not ref:
        return None
    try:
        joined = urljoin(base, ref)
        return normalize_http_url(joined)
    except ValueError:
        return None


def normalize_http_url(url: str, *, keep_credentials: bool = False) -> str | None:
    """Lower-case scheme and host, default port and fragment dropped, an empty path made ``/``,
    the query kept as given; None unless http(s) with a host.

    A URL with credentials (``user:password@``) gives None, since links met while crawling are
    never followed with them, unless ``keep_credentials``: a URL someone listed keeps its own.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in HTTP_SCHEMES or not host:
        return None
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if keep_credentials:
        if parts.username is not None:
            userinfo = parts.username + (f":{parts.password}" if parts.password is not None else "")
            netloc = f"{userinfo}@{netloc}"
    elif parts.username or parts.password:
        return None
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def site_of(url: str) -> str | None:
    """The registrable domain of a URL's host (``www.bbc.co.uk`` → ``bbc.co.uk``).

    IP addresses and hosts without a public suffix (``localhost``) are their own
    site. Scheme and port do not matter: http and https pages of one domain
    are one site.
    """
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    return _suffix_list().privatesuffix(host) or host


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to the same registrable domain."""
    site = site_of(a)
    return site is not None and site == site_of(b)
