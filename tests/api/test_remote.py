"""image_url fetching is SSRF-safe: private targets are refused and never contacted."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import pytest_asyncio
from aiohttp.abc import AbstractResolver

from sozy.api.errors import ApiError
from sozy.api.remote import AddressPolicy, BlockedAddress, RemoteImages, check_url, guarded_socket_factory

from .dns import MapResolver
from .index import HELD_OUT, photo_url
from .servers import PhotoServer


@pytest_asyncio.fixture(loop_scope="session")
async def target(faces_dir):
    """The server an attacker wants reached (127.0.0.1): it must see no request at all."""
    async with PhotoServer(faces_dir) as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def public(faces_dir, target):
    """A server the tests' policy treats as a public host (127.0.0.2, same port as the target)."""
    async with PhotoServer(faces_dir, host="127.0.0.2", port=target.port) as server:
        yield server


def remote(resolver: AbstractResolver | None = None, **policy) -> RemoteImages:
    return RemoteImages(max_bytes=10 * 1024 * 1024, timeout_s=5, policy=AddressPolicy(**policy), resolver=resolver)


async def search_url(api_client, url: str, fetcher: RemoteImages | None = None, **settings):
    async with api_client(remote=fetcher, **settings) as client:
        return await client.post("/v1/search", json={"image_url": url})


def assert_blocked(response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "blocked_address", response.text


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/photos/" + HELD_OUT,
        "http://localhost:{port}/photos/" + HELD_OUT,
        "http://[::1]:{port}/photos/" + HELD_OUT,
        "http://[::ffff:127.0.0.1]:{port}/photos/" + HELD_OUT,
        "http://127.1:{port}/photos/" + HELD_OUT,
        "http://2130706433:{port}/photos/" + HELD_OUT,
        "http://0.0.0.0:{port}/photos/" + HELD_OUT,
    ],
)
async def test_loopback_targets_are_refused_and_never_contacted(api_client, target, url):
    response = await search_url(api_client, url.format(port=target.port))
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("blocked_address", "fetch_failed")
    assert target.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/a.jpg",
        "http://192.168.1.1/a.jpg",
        "http://172.16.5.4/a.jpg",
        "http://100.64.0.1/a.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "https://[fe80::1]/a.jpg",
        "http://[fc00::1]/a.jpg",
        "http://[fd00:ec2::254]/a.jpg",
        "http://224.0.0.1/a.jpg",
        "http://[::]/a.jpg",
        "http://[64:ff9b::7f00:1]/a.jpg",
        "http://[2002:7f00:1::]/a.jpg",
    ],
)
async def test_private_literals_are_refused_before_connecting(api_client, url):
    response = await search_url(api_client, url)
    assert_blocked(response)


async def test_metadata_address_stays_refused_with_private_urls_allowed(api_client):
    response = await search_url(
        api_client, "http://169.254.169.254/latest/meta-data/", **{"api.allow_private_urls": True}
    )
    assert_blocked(response)


async def test_a_name_resolving_to_loopback_is_refused(api_client, target):
    resolver = MapResolver({"photos.example.com": [["127.0.0.1"]]})
    response = await search_url(
        api_client, f"http://photos.example.com:{target.port}/photos/{HELD_OUT}", remote(resolver)
    )
    assert_blocked(response)
    assert resolver.calls == ["photos.example.com"]
    assert target.hits == []


async def test_one_private_address_among_public_ones_refuses_the_host(api_client, target):
    resolver = MapResolver({"cdn.example.com": [["93.184.216.34", "127.0.0.1"]]})
    response = await search_url(api_client, f"http://cdn.example.com:{target.port}/photos/{HELD_OUT}", remote(resolver))
    assert_blocked(response)
    assert target.hits == []


async def test_public_host_fetch_works(api_client, target, public):
    """The control: with the same set-up, an allowed host is fetched and searched."""
    resolver = MapResolver({"photos.example.com": [["127.0.0.2"]]})
    fetcher = remote(resolver, treat_as_public=frozenset({ipaddress.ip_address("127.0.0.2")}))
    response = await search_url(api_client, f"http://photos.example.com:{public.port}/photos/{HELD_OUT}", fetcher)
    assert response.status_code == 200, response.text
    assert response.json()["faces"][0]["matches"][0]["name"] == "obama"
    assert public.hits == [f"/photos/{HELD_OUT}"]
    assert target.hits == []


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/photos/" + HELD_OUT,
        "http://localhost:{port}/photos/" + HELD_OUT,
        "http://[::1]:{port}/photos/" + HELD_OUT,
        "http://internal.example.com:{port}/photos/" + HELD_OUT,
        "http://169.254.169.254/latest/meta-data/",
    ],
)
async def test_a_public_looking_url_redirecting_to_loopback_is_refused(api_client, target, public, location):
    resolver = MapResolver(
        {
            "photos.example.com": [["127.0.0.2"]],
            "internal.example.com": [["127.0.0.1"]],
            "localhost": [["127.0.0.1", "::1"]],
        }
    )
    fetcher = remote(resolver, treat_as_public=frozenset({ipaddress.ip_address("127.0.0.2")}))
    to = location.format(port=target.port)
    response = await search_url(api_client, f"http://photos.example.com:{public.port}/redirect?to={to}", fetcher)
    assert_blocked(response)
    assert len(public.hits) == 1 and public.hits[0].startswith("/redirect")
    assert target.hits == []


async def test_dns_rebinding_between_redirects_is_refused(api_client, target, public):
    """The name answers a public address first, then loopback: the second connection is refused."""
    resolver = MapResolver({"rebind.example.com": [["127.0.0.2"], ["127.0.0.1"]]})
    fetcher = remote(resolver, treat_as_public=frozenset({ipaddress.ip_address("127.0.0.2")}))
    url = f"http://rebind.example.com:{public.port}/redirect?to=/photos/{HELD_OUT}"
    public.close_connections = True  # so the redirect needs a new connection and a new lookup
    response = await search_url(api_client, url, fetcher)
    assert_blocked(response)
    assert resolver.calls == ["rebind.example.com", "rebind.example.com"]
    assert target.hits == []


async def test_redirect_loops_are_capped(api_client, target):
    hop = f"http://127.0.0.1:{target.port}/redirect?to="
    url = hop + hop + hop + hop + hop + hop + hop + f"/photos/{HELD_OUT}"
    response = await search_url(api_client, url, **{"api.allow_private_urls": True})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "redirect_limit"
    assert len(target.hits) == 6


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/big", 413, "too_large"),
        ("/slow", 400, "fetch_timeout"),
        ("/text", 415, "not_an_image"),
        ("/missing", 400, "fetch_failed"),
    ],
)
async def test_size_time_and_content_caps(api_client, target, path, status, code):
    response = await search_url(
        api_client,
        f"http://127.0.0.1:{target.port}{path}",
        **{"api.allow_private_urls": True, "api.fetch_timeout_s": 1.0, "api.max_upload_bytes": 512 * 1024},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_unresolvable_host_is_a_clean_400(api_client):
    fetcher = remote(MapResolver({}))
    response = await search_url(api_client, "http://no-such-host.example/a.jpg", fetcher)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "fetch_failed"


# -- the policy itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.10", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "private"),
        ("100.64.0.1", "non-public"),
        ("198.18.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("64:ff9b::a00:1", "private (embedded in IPv6)"),
        ("2002:a00:1::", "private (embedded in IPv6)"),
        ("fec0::1", "site-local"),
    ],
)
def test_policy_refuses(address, reason):
    assert AddressPolicy().reason_refused(address) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_policy_allows_public_addresses(address):
    assert AddressPolicy().reason_refused(address) is None


def test_allow_private_keeps_metadata_refused():
    policy = AddressPolicy(allow_private=True)
    assert policy.reason_refused("127.0.0.1") is None
    assert policy.reason_refused("10.0.0.1") is None
    assert policy.reason_refused("169.254.169.254") == "cloud metadata"


def test_socket_factory_checks_the_address_it_connects_to():
    factory = guarded_socket_factory(AddressPolicy())
    with pytest.raises(BlockedAddress):
        factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)))
    with pytest.raises(BlockedAddress):
        factory((socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 80, 0, 0)))
    sock = factory((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 80)))
    sock.close()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://x/", "javascript:alert(1)", "http:///a", "//x/a.jpg"])
def test_check_url_refuses_other_schemes(url):
    with pytest.raises(ApiError) as caught:
        check_url(url, AddressPolicy())
    assert caught.value.code == "bad_url"


def test_each_client_gets_a_share_of_the_fetch_pool(guarded_server):
    """api.fetches_per_client = 2: a client holding two slow fetches is refused a third
    (429, Retry-After), while another client's fetch goes ahead."""
    import threading
    import time

    import httpx

    from .rawhttp import wait_for

    url = guarded_server.url
    photos = guarded_server.photos
    slow = {"image_url": f"{photos.url}/slow"}
    held: list[int] = []

    def hold() -> None:
        # A 503 (the one body slot busy, e.g. with another test's stalled upload) is asked again,
        # as a client honouring Retry-After would.
        for _ in range(30):
            response = httpx.post(f"{url}/v1/search", json=slow, timeout=60)
            if response.status_code != 503:
                break
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 2.0))
        held.append(response.status_code)

    threads = [threading.Thread(target=hold) for _ in range(2)]
    try:
        # One after the other: this server reads one body at a time (api.max_uploads = 1), so two
        # requests sent at once could see the second refused 503 while the first's body is read.
        for n, thread in enumerate(threads, 1):
            thread.start()
            wait_for(lambda n=n: photos.hits.count("/slow") >= n, f"slow fetch {n} to reach the image host")
        third = httpx.post(f"{url}/v1/search", json=slow, timeout=60)
        assert third.status_code == 429, third.text
        assert third.json()["error"]["code"] == "too_many_fetches"
        assert int(third.headers["Retry-After"]) >= 1
        assert photos.hits.count("/slow") == 2  # refused before connecting
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=60)
        with other:
            served = other.post(f"{url}/v1/search", json={"image_url": photo_url(photos.url, HELD_OUT)})
        assert served.status_code == 200, served.text
    finally:
        for thread in threads:
            if thread.ident is not None:  # started
                thread.join(60)
    assert held == [400, 400]  # each ran into api.fetch_timeout_s
