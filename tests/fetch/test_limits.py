"""Global and per-host concurrency, per-host rate: measured by the server."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from sozy.fetch import Fetcher
from sozy.fetch.limits import HostLimiter
from tests.servers.hostile import HostileServer, RequestLog

SLOW_PHOTO = "/photo/obama/obama.jpg?delay=0.15&n={}"


async def test_per_host_concurrency_is_never_exceeded(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(concurrency=32, per_host=3)) as fetcher:
        await fetcher.image(hostile.url("/photo/obama/obama.jpg"))  # robots.txt loaded
        hostile.log.reset()
        await asyncio.gather(*(fetcher.image(hostile.url(SLOW_PHOTO.format(i))) for i in range(15)))
    assert hostile.log.max_in_flight == 3  # reached, never passed


async def test_global_concurrency_spans_hosts(faces_dir: Path, crawl_settings) -> None:
    both = RequestLog()
    async with (
        HostileServer(faces_dir, log=both) as a, HostileServer(faces_dir, log=both) as b,
        Fetcher(crawl_settings(concurrency=4, per_host=4)) as fetcher,
    ):
        urls = [host.url(SLOW_PHOTO.format(i)) for i in range(8) for host in (a, b)]
        await asyncio.gather(*(fetcher.image(u) for u in urls))
    assert both.max_in_flight == 4
    assert both.count("/photo/obama/obama.jpg") == 16


async def test_a_busy_host_does_not_starve_others(faces_dir: Path, crawl_settings) -> None:
    async with (
        HostileServer(faces_dir) as slow, HostileServer(faces_dir) as fast,
        Fetcher(crawl_settings(concurrency=4, per_host=2)) as fetcher,
    ):
        await fetcher.image(slow.url("/photo/obama/obama.jpg"))
        await fetcher.image(fast.url("/photo/obama/obama.jpg"))
        slow_urls = [slow.url(f"/photo/obama/obama.jpg?delay=0.5&n={i}") for i in range(10)]
        queued = [asyncio.create_task(fetcher.image(u)) for u in slow_urls]
        await asyncio.sleep(0.05)
        start = time.monotonic()
        await fetcher.image(fast.url("/photo/biden/biden.jpg"))
        assert time.monotonic() - start < 0.4  # not behind the 10 queued for the slow host
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)


async def test_per_host_rate_spaces_requests(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(per_host=8, per_host_rate=10)) as fetcher:
        await asyncio.gather(*(fetcher.image(hostile.url(f"/photo/obama/obama.jpg?n={i}")) for i in range(6)))
    times = sorted(hostile.log.times("/photo/obama/obama.jpg"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 6 and min(gaps) >= 0.09


async def test_limiter_forgets_idle_hosts() -> None:
    limiter = HostLimiter(per_host=2)
    async with limiter.slot("http://a"):
        assert limiter.active("http://a") == 1 and len(limiter) == 1
    assert len(limiter) == 0


async def test_limiter_hold_delays_the_next_start() -> None:
    limiter = HostLimiter(per_host=2)
    limiter.hold("http://a", 0.2)
    start = time.monotonic()
    async with limiter.slot("http://a"):
        assert time.monotonic() - start >= 0.19
    async with limiter.slot("http://b"):
        assert time.monotonic() - start < 0.3


async def test_cancelled_waiter_releases_its_place() -> None:
    limiter = HostLimiter(per_host=1)
    async with limiter.slot("http://a"):
        waiter = asyncio.create_task(limiter.slot("http://a").__aenter__())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert len(limiter) == 0
    async with limiter.slot("http://a"):
        assert limiter.active("http://a") == 1


def test_limiter_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        HostLimiter(per_host=0)
