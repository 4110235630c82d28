"""robots.txt and X-Robots-Tag: the parsers alone, then through the Fetcher."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from sozy.fetch import Fetcher, FetchError
from sozy.fetch.robots import RobotsCache, rules_from_response, x_robots_block, x_robots_directives
from tests.servers.hostile import HostileServer

# -- X-Robots-Tag parsing --------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "blocked"),
    [
        (["noai"], "noai"),
        (["noimageai"], "noimageai"),
        (["noindex"], "noindex"),
        (["noimageindex"], "noimageindex"),
        (["none"], "none"),
        (["NoAI"], "noai"),
        (["noarchive, nofollow"], None),
        (["nofollow", "noai"], "noai"),  # header given twice
        (["SozyBot: noindex"], "noindex"),
        (["sozybot: noai, noimageai"], "noai"),
        (["googlebot: noindex"], None),
        (["googlebot: noindex, nofollow", "SozyBot: nofollow"], None),
        (["googlebot: nofollow, SozyBot: noimageindex"], "noimageindex"),
        (["max-image-preview: large, noai"], "noai"),
        (["unavailable_after: Friday, 25-Jun-2010 15:00:00 PST"], None),
        ([""], None),
    ],
)
def test_x_robots_tag(values: list[str], blocked: str | None) -> None:
    assert x_robots_block(values, "SozyBot") == blocked


def test_x_robots_directives_are_scoped_to_the_token() -> None:
    values = ["nofollow", "otherbot: noindex", "SozyBot: noarchive"]
    assert x_robots_directives(values, "SozyBot") == {"nofollow", "noarchive"}
    assert x_robots_directives(values, "OtherBot") == {"nofollow", "noindex"}


# -- robots.txt outcomes (RFC 9309 2.3.1) ---------------------------------------


def test_robots_2xx_rules_apply() -> None:
    rules, ttl = rules_from_response(200, b"User-agent: SozyBot\nDisallow: /private/\n")
    assert not rules.allows("http://h/private/a.jpg", "SozyBot")
    assert rules.allows("http://h/public/a.jpg", "SozyBot")
    assert rules.allows("http://h/private/a.jpg", "OtherBot")
    assert ttl == 24 * 3600


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_robots_4xx_allows_everything(status: int) -> None:
    rules, _ = rules_from_response(status, b"")
    assert rules.allows("http://h/anything", "SozyBot")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_robots_5xx_disallows_everything_for_a_while(status: int) -> None:
    rules, ttl = rules_from_response(status, b"")
    assert rules.disallow_all and not rules.allows("http://h/", "SozyBot")
    assert str(status) in rules.detail
    assert ttl < 3600


def test_robots_crawl_delay() -> None:
    rules, _ = rules_from_response(200, b"User-agent: *\nCrawl-delay: 2\n")
    assert rules.crawl_delay("SozyBot") == 2.0


async def test_robots_cache_loads_once_and_expires_errors() -> None:
    now = [0.0]
    loads: list[str] = []
    answer = [(503, b"")]

    async def load(origin: str) -> tuple[int, bytes]:
        loads.append(origin)
        await asyncio.sleep(0.01)
        return answer[0]

    cache = RobotsCache(load, error_ttl_s=60, clock=lambda: now[0])
    results = await asyncio.gather(*(cache.rules("http://h") for _ in range(50)))
    assert len(loads) == 1 and all(r.disallow_all for r in results)
    now[0] = 59
    assert (await cache.rules("http://h")).disallow_all and len(loads) == 1
    now[0] = 61  # the error has expired: ask again
    answer[0] = (404, b"")
    assert not (await cache.rules("http://h")).disallow_all
    assert len(loads) == 2


async def test_robots_cache_is_bounded() -> None:
    async def load(origin: str) -> tuple[int, bytes]:
        return 404, b""

    cache = RobotsCache(load, max_hosts=3)
    for i in range(5):
        await cache.rules(f"http://h{i}")
    assert cache.cached("http://h0") is None and cache.cached("http://h4") is not None


async def test_robots_loader_failure_means_unreachable() -> None:
    async def load(origin: str) -> tuple[int, bytes]:
        raise ConnectionRefusedError("nobody home")

    rules = await RobotsCache(load).rules("http://h")
    assert rules.disallow_all and "unreachable" in rules.detail


# -- through the Fetcher ---------------------------------------------------------


async def test_disallowed_path_is_skipped_and_counted(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
            with pytest.raises(FetchError) as info:
                await fetcher.image(hostile.url(f"/private/obama/{name}"))
            assert info.value.reason == "robots_txt"
        allowed = await fetcher.image(hostile.url("/photo/obama/obama.jpg"))
        assert fetcher.counters["robots_txt"] == 3
    assert allowed.image_type == "jpeg"
    assert not any(r.path.startswith("/private/") for r in hostile.log.requests)


async def test_the_star_group_applies_to_tokens_without_their_own(hostile: HostileServer, crawl_settings) -> None:
    # RFC 9309: a crawler obeys its own group only; SozyBot has one, OtherBot falls under "*".
    async with Fetcher(crawl_settings(robots_token="OtherBot")) as fetcher:
        with pytest.raises(FetchError, match="robots_txt"):
            await fetcher.page(hostile.url("/nobody/obama/obama.jpg"))
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.page(hostile.url("/nobody/obama/obama.jpg"))
    assert got.status == 200


async def test_robots_token_is_configurable(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(robots_token="OtherBot")) as fetcher:
        got = await fetcher.image(hostile.url("/private/obama/obama.jpg"))
    assert got.image_type == "jpeg"


async def test_robots_can_be_turned_off(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(), robots=False) as fetcher:
        got = await fetcher.image(hostile.url("/private/obama/obama.jpg?xrt=noai"))
    assert got.image_type == "jpeg"
    assert hostile.log.count("/robots.txt") == 0
    async with Fetcher(crawl_settings(respect_robots=False)) as fetcher:
        await fetcher.image(hostile.url("/private/obama/obama.jpg"))
    assert hostile.log.count("/robots.txt") == 0


async def test_robots_is_fetched_once_per_host_under_concurrency(hostile: HostileServer, crawl_settings) -> None:
    hostile.robots_delay = 0.3  # all 100 requests arrive while robots.txt is loading
    urls = [hostile.url(f"/photo/obama/obama.jpg?n={i}") for i in range(100)]
    async with Fetcher(crawl_settings(concurrency=32, per_host=8)) as fetcher:
        results = await asyncio.gather(*(fetcher.image(u) for u in urls))
        assert fetcher.counters["robots_fetches"] == 1
    assert all(r.image_type == "jpeg" for r in results)
    assert hostile.log.count("/robots.txt") == 1
    assert hostile.log.counts()["/photo/obama/obama.jpg"] == 100


async def test_robots_is_per_origin(faces_dir: Path, hostile: HostileServer, crawl_settings) -> None:
    async with (
        HostileServer(faces_dir, robots_txt="User-agent: *\nDisallow: /\n") as closed,
        Fetcher(crawl_settings()) as fetcher,
    ):
        await fetcher.image(hostile.url("/photo/obama/obama.jpg"))
        with pytest.raises(FetchError, match="robots_txt"):
            await fetcher.image(closed.url("/photo/obama/obama.jpg"))
        await fetcher.image(hostile.url("/photo/biden/biden.jpg"))
    assert hostile.log.count("/robots.txt") == 1 and closed.log.count("/robots.txt") == 1


async def test_redirect_target_is_checked_against_its_own_robots(
    faces_dir: Path, hostile: HostileServer, crawl_settings
) -> None:
    async with HostileServer(faces_dir) as other:
        target = other.url("/private/obama/obama.jpg")
        async with Fetcher(crawl_settings()) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.image(hostile.url(f"/redirect?to={target}"))
    assert info.value.reason == "robots_txt"
    assert other.log.count("/robots.txt") == 1
    assert other.log.count("/private/obama/obama.jpg") == 0


async def test_robots_404_allows_everything(hostile: HostileServer, crawl_settings) -> None:
    hostile.robots_status = 404
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/private/obama/obama.jpg"))
    assert got.image_type == "jpeg"


async def test_robots_5xx_keeps_us_off_the_host_and_is_cached(hostile: HostileServer, crawl_settings) -> None:
    hostile.robots_status = 503
    async with Fetcher(crawl_settings()) as fetcher:
        for path in ("/photo/obama/obama.jpg", "/photo/biden/biden.jpg"):
            with pytest.raises(FetchError) as info:
                await fetcher.image(hostile.url(path))
            assert info.value.reason == "robots_unavailable"
        assert fetcher.counters["robots_unavailable"] == 2
    assert hostile.log.count("/robots.txt") == 1
    assert not any(r.path.startswith("/photo/") for r in hostile.log.requests)


async def test_robots_that_hangs_means_unavailable(hostile: HostileServer, crawl_settings) -> None:
    hostile.robots_delay = 30
    async with Fetcher(crawl_settings(read_timeout_s=0.3)) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.image(hostile.url("/photo/obama/obama.jpg"))
    assert info.value.reason == "robots_unavailable"


async def test_crawl_delay_spaces_requests(faces_dir: Path, crawl_settings) -> None:
    async with (
        HostileServer(faces_dir, robots_txt="User-agent: *\nCrawl-delay: 0.25\n") as host,
        Fetcher(crawl_settings()) as fetcher,
    ):
        await asyncio.gather(*(fetcher.image(host.url(f"/photo/obama/obama.jpg?n={i}")) for i in range(4)))
    times = sorted(host.log.times("/photo/obama/obama.jpg"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.22


# -- X-Robots-Tag through the Fetcher ------------------------------------------------


@pytest.mark.parametrize("tag", ["noai", "noimageai", "noindex", "noimageindex", "none", "SozyBot: noindex"])
async def test_x_robots_tag_blocks_images_and_pages(hostile: HostileServer, crawl_settings, tag: str) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.image(hostile.url(f"/photo/obama/obama.jpg?xrt={tag}"))
        assert info.value.reason == "x_robots_tag"
        with pytest.raises(FetchError, match="x_robots_tag"):
            await fetcher.page(hostile.url(f"/photo/obama/obama.jpg?xrt={tag}"))
        assert fetcher.counters["x_robots_tag"] == 2


@pytest.mark.parametrize("tag", ["nofollow", "noarchive", "googlebot: noindex"])
async def test_x_robots_tag_that_does_not_concern_us(hostile: HostileServer, crawl_settings, tag: str) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url(f"/photo/obama/obama.jpg?xrt={tag}"))
    assert got.image_type == "jpeg"


async def test_x_robots_noai_route(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        with pytest.raises(FetchError, match="x_robots_tag"):
            await fetcher.image(hostile.url("/noai.jpg"))
