"""Fetch policies: the agent, the pool and the retry rules each request carries, measured at the server."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import pytest
from yarl import URL

from sozy.fetch import (
    API,
    WDQS,
    WEB,
    WIKIMEDIA_MEDIA,
    Fetcher,
    FetchPolicy,
    policy_for,
    policy_named,
)
from sozy.fetch.policy import POLICIES
from tests.servers.hostile import HostileServer, RequestLog

from .test_fetcher import fetch_error

SLOW = "/photo/obama/obama.jpg?delay=0.15&n={}"


def test_policies_are_plain_data_that_travel() -> None:
    for policy in POLICIES.values():
        assert pickle.loads(pickle.dumps(policy)) == policy
        assert policy_named(policy.name) is policy
    assert policy_named(None) is WEB
    with pytest.raises(ValueError, match="unknown fetch policy 'x'"):
        policy_named("x")
    assert (WIKIMEDIA_MEDIA.identify, WIKIMEDIA_MEDIA.concurrency) == (True, 2)
    assert (API.identify, API.concurrency, WEB.identify) == (True, 1, False)


def test_the_source_names_the_policy_and_wikimedias_media_host_is_known_by_name() -> None:
    assert policy_for("http://127.0.0.1:9/x.jpg", "wikimedia_media") is WIKIMEDIA_MEDIA
    assert policy_for("https://upload.wikimedia.org/wikipedia/commons/a/ab/X.jpg") is WIKIMEDIA_MEDIA
    assert policy_for("https://img.example.org/x.jpg") is WEB
    assert policy_for("file:///photos/x.jpg") is WEB


def test_pool_keys() -> None:
    target = URL("https://upload.example.org:8443/a/b.jpg?x=1")
    assert WEB.pool_key(target) == "https://upload.example.org:8443"
    assert API.pool_key(target) == "https://upload.example.org:8443/a/b.jpg"
    assert WIKIMEDIA_MEDIA.pool_key(target) == "policy:wikimedia_media"


async def test_media_policy_identifies_and_keeps_two_downloads_across_hosts(faces_dir: Path, crawl_settings) -> None:
    both = RequestLog()
    settings = crawl_settings(concurrency=16, per_host=8)
    async with (
        HostileServer(faces_dir, log=both) as a,
        HostileServer(faces_dir, log=both) as b,
        Fetcher(settings) as fetcher,
    ):
        for host in (a, b):  # robots.txt loaded first, so only photos overlap below
            await fetcher.image(host.url("/photo/obama/obama.jpg"))
        both.reset()
        urls = [host.url(SLOW.format(i)) for i in range(6) for host in (a, b)]
        await asyncio.gather(*(fetcher.image(u, policy=WIKIMEDIA_MEDIA) for u in urls))
        media_peak = both.max_in_flight
        both.reset()
        await asyncio.gather(*(fetcher.image(u + "&web=1") for u in urls))
    assert media_peak == 2  # reached, never passed, over both hosts together
    assert both.max_in_flight > 2  # the same photos under the web policy: per host, in parallel
    assert set(both.user_agents("/photo/")) != {settings.api_user_agent}


async def test_media_policy_sends_the_identifying_agent(hostile: HostileServer, crawl_settings) -> None:
    settings = crawl_settings()
    async with Fetcher(settings) as fetcher:
        await fetcher.image(hostile.url("/photo/obama/obama.jpg"), policy=WIKIMEDIA_MEDIA)
        await fetcher.image(hostile.url("/photo/biden/biden.jpg"))
    assert hostile.log.user_agents("/photo/obama/") == [settings.api_user_agent]
    assert hostile.log.user_agents("/photo/biden/") != [settings.api_user_agent]


async def test_api_calls_to_one_endpoint_go_in_series(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(per_host=8)) as fetcher:
        await asyncio.gather(
            *(fetcher.api_json(hostile.url("/api/echo"), {"delay": "0.1", "n": str(i)}) for i in range(5))
        )
        one_endpoint = hostile.log.max_in_flight
        hostile.log.reset()
        # Two endpoints on one host are two APIs: one call each at a time, side by side.
        await asyncio.gather(
            *(
                fetcher.api_text(hostile.url(path), {"delay": "0.2", "n": str(i)})
                for i in range(2)
                for path in ("/api/echo", "/api/text")
            )
        )
    assert one_endpoint == 1
    assert hostile.log.max_in_flight == 2


async def test_wdqs_policy_does_not_repeat_a_server_error(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(retries=3)) as fetcher:
        error = await fetch_error(fetcher.api_json(hostile.url("/status/500"), policy=WDQS))
        assert error.reason == "http_5xx" and error.status == 500
        web = await fetch_error(fetcher.api_json(hostile.url("/status/500?api=1")))
    assert hostile.log.count("/status/500") == 1 + 4  # WDQS: once; the plain API policy: 1 + 3 retries
    assert web.status == 500


async def test_wdqs_policy_waits_out_a_long_retry_after(hostile: HostileServer, crawl_settings) -> None:
    # backoff_max_s 0.3 would refuse a 1 s Retry-After; the query service's policy waits up to 120 s.
    async with Fetcher(crawl_settings(backoff_max_s=0.3)) as fetcher:
        refused = await fetch_error(fetcher.image(hostile.url("/limited/a?fail=1&after=1")))
        got = await fetcher.api(hostile.url("/limited/b?fail=1&after=1"), policy=WDQS)
    assert refused.reason == "http_429"
    assert got.status == 200
    first, second = hostile.log.times("/limited/b")
    assert second - first >= 0.95


async def test_hold_pauses_a_pool(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        await fetcher.api_json(hostile.url("/api/echo"))
        fetcher.hold(hostile.url("/api/echo?x=1"), 0.5)
        await fetcher.api_json(hostile.url("/api/echo"))
    first, second = hostile.log.times("/api/echo")
    assert second - first >= 0.45


async def test_check_robots_raises_what_a_fetch_would(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        await fetcher.check_robots(hostile.url("/photo/obama/obama.jpg"))
        error = await fetch_error(fetcher.check_robots(hostile.url("/private/x.jpg")))
    assert error.reason == "robots_txt"
    assert hostile.log.count("/private/x.jpg") == 0


def test_a_custom_policy_is_a_value() -> None:
    custom = FetchPolicy("mirror", identify=True, concurrency=3)
    assert custom.pool_key(URL("http://h:1/x")) == "http://h:1"
