"""Fetch a photo from a client-supplied ``image_url`` without being turned against our own network.

A search by URL makes the server fetch whatever the client names, which is the
classic server-side request forgery (SSRF) hole. The policy here:

- only ``http`` and ``https`` URLs, without user info;
- every address a host name resolves to is checked, and the host is refused
  if ANY of them is loopback, private, link-local, multicast, reserved,
  unspecified, shared (CGNAT), a cloud metadata address, or the IPv6 form of
  one of these (``::1``, ``fc00::/7``, ``fe80::/10``, IPv4-mapped/6to4/NAT64
  addresses embedding a forbidden IPv4 address);
- the check runs where the connection is made: the connector resolves names
  through :class:`GuardedResolver` and creates sockets through a factory that
  re-checks the exact address it connects to, so a DNS answer that changes
  between check and use (rebinding) cannot slip through, and IP literals (which
  skip the resolver) are caught too;
- redirects are followed by hand (``sozy.fetch.redirects``, as the crawler
  does), at most ``MAX_REDIRECTS`` and never back to a URL already fetched,
  each target checked like the first URL;
- the body is capped in bytes while it streams in, and the whole fetch in time;
- no cookies, no proxies from the environment;
- each client gets a small share of the connection pool (``per_client``
  fetches at once, beyond that 429), so one client's slow hosts cannot queue
  everyone else's fetches.

``api.allow_private_urls`` lifts the private-address rule for tests and
private deployments; cloud metadata addresses stay refused even then.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import math
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from sozy.api.errors import ApiError
from sozy.fetch.redirects import BadRedirect, RedirectChain, RedirectLimit, next_hop, redirect_location

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 5
# Connections to image hosts shared by all clients' fetches.
POOL_CONNECTIONS = 64
USER_AGENT = "SozyBot/0.1 (lookalike search; fetches one photo a user asked for)"
# Instance metadata services: never reachable, whatever the settings say.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(OSError):
    """A host resolved to (or is) an address the policy forbids."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, a {reason} address")
        self.host = host
        self.address = address
        self.reason = reason


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses a fetch may connect to."""

    allow_private: bool = False
    # Addresses to treat as public: lets a test run a "public" server on 127.0.0.x.
    treat_as_public: frozenset[IPAddress] = field(default_factory=frozenset)

    def reason_refused(self, address: str | IPAddress) -> str | None:
        """Why ``address`` is refused, or None when it may be used."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
        except ValueError:
            return "unparsable"
        if ip in self.treat_as_public:
            return None
        return _reason(ip, self.allow_private)

    def check(self, host: str, address: str) -> None:
        reason = self.reason_refused(address)
        if reason is not None:
            raise BlockedAddress(host, address, reason)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _reason(ip: IPAddress, allow_private: bool) -> str | None:
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            # The IPv4 address inside is where the connection ends up: judge that.
            reason = _reason(inner, allow_private)
            return None if reason is None else f"{reason} (embedded in IPv6)"
    if allow_private:
        return None
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("non-public", not ip.is_global),
    )
    for name, hit in checks:
        if hit:
            return name
    return None


class GuardedResolver(AbstractResolver):
    """Resolves through ``inner`` and refuses a host if any of its addresses is forbidden."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = ThreadedResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self.policy.check(host, result["host"])
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def guarded_socket_factory(policy: AddressPolicy) -> Callable[[Any], socket.socket]:
    """A socket factory that refuses to create a socket for a forbidden address (checked at connect time)."""

    def factory(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        policy.check(str(sockaddr[0]), str(sockaddr[0]))
        return socket.socket(family=family, type=type_, proto=proto)

    return factory


class RemoteImages:
    """Fetches photos by URL for ``/v1/search`` under the SSRF policy above. One aiohttp session."""

    def __init__(
        self,
        *,
        max_bytes: int,
        timeout_s: float,
        policy: AddressPolicy | None = None,
        resolver: AbstractResolver | None = None,
        max_redirects: int = MAX_REDIRECTS,
        per_client: int = 4,
    ) -> None:
        self.max_bytes = max_bytes
        # One client's share of the pool: its fetches beyond this are refused (429).
        self.per_client = max(1, per_client)
        self._fetching: collections.Counter[str] = collections.Counter()
        self.timeout_s = timeout_s
        self.policy = policy or AddressPolicy()
        self.max_redirects = max_redirects
        self._inner_resolver = resolver
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy, self._inner_resolver),
            socket_factory=guarded_socket_factory(self.policy),
            use_dns_cache=False,
            limit=POOL_CONNECTIONS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RemoteImages:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def fetch(self, url: str, client: str = "") -> bytes:
        """The photo at ``url``; raises :class:`ApiError` (400/413) for anything refused or failed,
        429 when ``client`` already has its share of fetches running."""
        if self._session is None:
            raise RuntimeError("RemoteImages.start() was not called")
        if self._fetching[client] >= self.per_client:
            retry_after = str(max(1, math.ceil(self.timeout_s)))
            raise ApiError(
                429,
                "too_many_fetches",
                f"{self.per_client} image_url fetches of yours are still running; try again in {retry_after} s",
                {"Retry-After": retry_after},
            )
        self._fetching[client] += 1
        try:
            return await self._fetch(self._session, url)
        finally:
            self._fetching[client] -= 1
            if not self._fetching[client]:
                del self._fetching[client]

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(session, url)
        except TimeoutError:
            raise ApiError(400, "fetch_timeout", f"fetching image_url took longer than {self.timeout_s:g} s") from None

    async def _follow(self, session: aiohttp.ClientSession, url: str) -> bytes:
        current = check_url(url, self.policy)
        chain = RedirectChain(current, self.max_redirects)
        while True:
            try:
                async with session.get(current, allow_redirects=False) as response:
                    location = redirect_location(response.status, response.headers)
                    if location is None:
                        if response.status != 200:
                            raise ApiError(400, "fetch_failed", f"image_url answered HTTP {response.status}")
                        return await self._read(response)
            except ApiError:
                raise
            except aiohttp.ClientConnectorError as exc:
                blocked = _blocked_cause(exc)
                if blocked is not None:
                    raise _blocked_error(blocked) from None
                raise ApiError(400, "fetch_failed", f"cannot connect to {current.host}") from None
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                blocked = _blocked_cause(exc)
                if blocked is not None:
                    raise _blocked_error(blocked) from None
                raise ApiError(400, "fetch_failed", f"fetching image_url failed ({type(exc).__name__})") from None
            current = self._next(chain, current, location)

    def _next(self, chain: RedirectChain, current: URL, location: str) -> URL:
        """The redirect's target, vetted like the first URL before anything connects to it."""
        try:
            hop = check_url(next_hop(current, location), self.policy)
        except BadRedirect:
            raise ApiError(400, "bad_url", "image_url redirects to an invalid or non-http(s) URL") from None
        try:
            return chain.follow(hop)
        except RedirectLimit:
            raise ApiError(
                400, "redirect_limit", f"image_url redirects more than {self.max_redirects} times, or in a loop"
            ) from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        declared = response.content_length
        if declared is not None and declared > self.max_bytes:
            raise ApiError(413, "too_large", f"the photo at image_url is larger than {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in response.content.iter_chunked(64 * 1024):
            if len(body) + len(chunk) > self.max_bytes:
                raise ApiError(413, "too_large", f"the photo at image_url is larger than {self.max_bytes} bytes")
            body += chunk
        return bytes(body)


def check_url(url: str | URL, policy: AddressPolicy) -> URL:
    """Parse and vet a URL before any connection: scheme, host, and literal IP addresses."""
    try:
        parsed = url if isinstance(url, URL) else URL(url)
        host = parsed.host
    except (ValueError, TypeError):
        raise ApiError(400, "bad_url", "image_url is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise ApiError(400, "bad_url", "image_url must be an http:// or https:// URL")
    if not host:
        raise ApiError(400, "bad_url", "image_url has no host")
    if parsed.user is not None or parsed.password is not None:
        raise ApiError(400, "bad_url", "image_url must not contain a user name or password")
    literal = _as_ip(host)
    if literal is not None:
        reason = policy.reason_refused(literal)
        if reason is not None:
            raise _blocked_error(BlockedAddress(host, str(literal), reason))
    return parsed


def _as_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _blocked_cause(exc: BaseException) -> BlockedAddress | None:
    """Find a BlockedAddress anywhere in an exception's causes (aiohttp wraps it)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedAddress):
            return current
        nested: Iterable[BaseException | None] = (
            current.__cause__,
            current.__context__,
            getattr(current, "os_error", None),
            *(getattr(current, "exceptions", None) or ()),
        )
        stack.extend(e for e in nested if isinstance(e, BaseException))
    return None


def _blocked_error(blocked: BlockedAddress) -> ApiError:
    return ApiError(
        400,
        "blocked_address",
        f"image_url points to a {blocked.reason} address; only public internet addresses can be fetched",
    )
