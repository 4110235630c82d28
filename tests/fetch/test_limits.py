"""Global and per-host concurrency, per-host rate: measured by the server."""

from __future__ import annotations

import asyncio
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
        HostileServer(faces_dir, log=both) as a,
        HostileServer(faces_dir, log=both) as b,
        Fetcher(crawl_settings(concurrency=4, per_host=4)) as fetcher,
    ):
        urls = [host.url(SLOW_PHOTO.format(i)) for i in range(8) for host in (a, b)]
        await asyncio.gather(*(fetcher.image(u) for u in urls))
    assert both.max_in_flight == 4
    assert both.count("/photo/obama/obama.jpg") == 16


async def test_a_busy_host_does_not_starve_others(faces_dir: Path, crawl_settings) -> None:
    async with (
        HostileServer(faces_dir) as slow,
        HostileServer(faces_dir) as fast,
        Fetcher(crawl_settings(concurrency=4, per_host=2)) as fetcher,
    ):
        await fetcher.image(slow.url("/photo/obama/obama.jpg"))
        await fetcher.image(fast.url("/photo/obama/obama.jpg"))
        slow.log.reset()
        slow_urls = [slow.url(f"/photo/obama/obama.jpg?delay=0.5&n={i}") for i in range(10)]
        queued = [asyncio.create_task(fetcher.image(u)) for u in slow_urls]
        while slow.log.in_flight < 2:  # the slow host's two slots are taken, eight requests queue
            await asyncio.sleep(0.01)
        await fetcher.image(fast.url("/photo/biden/biden.jpg"))
        # Not behind the 8 queued for the slow host (the last of them starts 2 s in, two at a time).
        assert slow.log.count("/photo/obama/obama.jpg") < 10
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)


async def test_per_host_rate_spaces_requests(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(per_host=8, per_host_rate=10)) as fetcher:
        started = time.monotonic()
        await asyncio.gather(*(fetcher.image(hostile.url(f"/photo/obama/obama.jpg?n={i}")) for i in range(6)))
    times = sorted(hostile.log.times("/photo/obama/obama.jpg"))
    # The k-th request may not start before k intervals have passed. A loaded machine only
    # delays requests, and can bunch late ones together, so the gaps between arrivals say
    # nothing; the earliest each could arrive does.
    assert len(times) == 6
    assert all(at >= started + k * 0.1 - 0.005 for k, at in enumerate(times))


async def test_limiter_reserves_start_times_one_interval_apart() -> None:
    now = 100.0  # a clock that stands still: every reservation is made at the same instant
    limiter = HostLimiter(per_host=8, rate=50, clock=lambda: now)
    order: list[int] = []

    async def request(n: int) -> None:
        async with limiter.slot("http://a"):
            order.append(n)

    await asyncio.gather(*(request(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]  # asyncio wakes sleepers in deadline order
    assert len(limiter) == 1  # idle, yet kept: its next allowed start lies ahead


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
