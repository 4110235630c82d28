"""Fetcher against the hostile host: statuses, retries, redirects, timeouts, APIs."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from sozy.fetch import Fetched, Fetcher, FetchError
from tests.servers.hostile import HostileServer, bomb_png


async def fetch_error(call) -> FetchError:  # type: ignore[no-untyped-def]
    with pytest.raises(FetchError) as info:
        await call
    return info.value


# -- images: bytes, sniffing, Content-Type ---------------------------------------


async def test_image_is_the_photo_byte_for_byte(hostile: HostileServer, crawl_settings, faces_dir: Path) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/photo/obama/obama.jpg"))
    assert isinstance(got, Fetched)
    assert got.body == (faces_dir / "obama/obama.jpg").read_bytes()
    assert got.image_type == "jpeg"
    assert got.status == 200
    assert got.content_type == "image/jpeg"
    assert got.url == got.final_url == hostile.url("/photo/obama/obama.jpg")
    assert fetcher.counters["image"] == 1 and fetcher.counters["requests"] == 1


async def test_png_is_sniffed_as_png(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/photo/obama/obama-rgba.png"))
    assert got.image_type == "png"


async def test_a_real_jpeg_with_a_wrong_content_type_is_accepted(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/wrong-type.jpg"))
    # The bytes decide, not the header: the header is kept as the server sent it.
    assert got.image_type == "jpeg"
    assert got.content_type is not None and got.content_type.startswith("text/html")


async def test_html_served_as_image_jpeg_is_not_an_image(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/html-as-jpeg.jpg")))
        assert error.reason == "not_an_image"
        assert fetcher.counters["not_an_image"] == 1


async def test_truncated_jpeg_is_fetched_as_is_for_the_decoder_to_judge(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/truncated.jpg"))
    full = hostile.photo_bytes()
    assert got.body == full[: len(full) // 2]
    assert got.image_type == "jpeg"


async def test_body_cut_off_before_content_length_is_retried_then_incomplete(
    hostile: HostileServer, crawl_settings
) -> None:
    async with Fetcher(crawl_settings(retries=2)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/cut-off.jpg")))
    assert error.reason == "incomplete_body"
    assert hostile.log.count("/cut-off.jpg") == 3


async def test_decompression_bomb_arrives_small_and_sniffed(hostile: HostileServer, crawl_settings) -> None:
    # Fetching it is harmless (a few hundred bytes); the decoder's pixel limit refuses it.
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/bomb.png"))
    assert got.body == bomb_png()
    assert got.image_type == "png"
    assert len(got.body) < 2048


async def test_referer_is_sent_with_images(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        await fetcher.image(hostile.url("/photo/obama/obama.jpg"), referer="https://example.org/obama")
    request = next(r for r in hostile.log.requests if r.path.startswith("/photo/"))
    assert request.headers["Referer"] == "https://example.org/obama"
    assert request.headers["Accept"].startswith("image/")


# -- statuses and retries --------------------------------------------------------


@pytest.mark.parametrize("code", [400, 403, 404, 410])
async def test_client_errors_fail_at_once_without_retry(hostile: HostileServer, crawl_settings, code: int) -> None:
    async with Fetcher(crawl_settings(retries=3)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url(f"/status/{code}")))
        assert fetcher.counters["retries"] == 0
    assert error.reason == f"http_{code}"
    assert error.status == code
    assert hostile.log.count(f"/status/{code}") == 1


async def test_server_errors_are_retried_then_http_5xx(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(retries=2)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/status/500")))
        assert fetcher.counters["retries"] == 2
        assert fetcher.counters["http_5xx"] == 1
    assert (error.reason, error.status) == ("http_5xx", 500)
    assert hostile.log.count("/status/500") == 3


async def test_503_then_200_succeeds_after_retries(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(retries=3)) as fetcher:
        got = await fetcher.image(hostile.url("/flaky/a?fail=2&status=503"))
        assert fetcher.counters["retries"] == 2
    assert got.body == hostile.photo_bytes()
    assert hostile.log.count("/flaky/a") == 3


async def test_408_is_retried(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(hostile.url("/flaky/t?fail=1&status=408"))
    assert got.image_type == "jpeg"
    assert hostile.log.count("/flaky/t") == 2


async def test_backoff_grows_exponentially(hostile: HostileServer, crawl_settings) -> None:
    # base 0.2: waits of [0.1, 0.2] then [0.2, 0.4] (equal jitter) before attempts 2 and 3.
    async with Fetcher(crawl_settings(retries=2, backoff_base_s=0.2)) as fetcher:
        await fetch_error(fetcher.image(hostile.url("/status/502")))
    first, second, third = hostile.log.times("/status/502")
    assert 0.1 <= second - first < 0.45
    assert 0.2 <= third - second < 0.65


async def test_429_retry_after_seconds_is_honoured(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        start = time.monotonic()
        got = await fetcher.image(hostile.url("/limited/s?fail=1&after=1"))
        elapsed = time.monotonic() - start
    assert got.image_type == "jpeg"
    first, second = hostile.log.times("/limited/s")
    assert second - first >= 0.95
    assert elapsed < 2.5


async def test_429_retry_after_http_date_is_honoured(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        await fetcher.image(hostile.url("/limited/d?fail=1&after=2&form=date"))
    first, second = hostile.log.times("/limited/d")
    # An HTTP-date has whole seconds, so "now + 2 s" means a wait of at least 1 s.
    assert second - first >= 0.9


async def test_a_retry_after_beyond_backoff_max_is_not_cut_short(hostile: HostileServer, crawl_settings) -> None:
    """Asked to wait 60 s with backoff_max_s 0.3: fail now rather than ask again early."""
    async with Fetcher(crawl_settings(backoff_max_s=0.3)) as fetcher:
        # Not a timing test: a fetcher that waited the 60 s asked would not be done in 30.
        async with asyncio.timeout(30):
            error = await fetch_error(fetcher.image(hostile.url("/limited/c?fail=1&after=60")))
        assert fetcher.counters["retries"] == 0 and fetcher.counters["http_429"] == 1
        # ... and the host is paused for backoff_max_s before anything else goes to it.
        await fetcher.image(hostile.url("/photo/biden/biden.jpg"))
    assert error.reason == "http_429" and error.status == 429
    assert "Retry-After 60 s" in str(error)
    assert hostile.log.count("/limited/c") == 1
    (refused_at,) = hostile.log.times("/limited/c")
    (other_at,) = hostile.log.times("/photo/biden/biden.jpg")
    assert other_at - refused_at >= 0.25


async def test_429_pauses_the_whole_host(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        limited = asyncio.create_task(fetcher.image(hostile.url("/limited/h?fail=1&after=1")))
        while not fetcher.counters["retries"]:  # the 429 has paused the host: ask it for something else
            await asyncio.sleep(0.01)
        other = await fetcher.image(hostile.url("/photo/biden/biden.jpg"))
        await limited
    assert other.image_type == "jpeg"
    (refused_at,) = hostile.log.times("/limited/h")[:1]
    (other_at,) = hostile.log.times("/photo/biden/biden.jpg")
    assert other_at - refused_at >= 0.95


async def test_429_when_retries_run_out(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(retries=1)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/limited/x?fail=5&after=0")))
    assert error.reason == "http_429"
    assert hostile.log.count("/limited/x") == 2


async def test_connection_refused_is_retried_then_connection(crawl_settings) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with Fetcher(crawl_settings(retries=2), robots=False) as fetcher:
        error = await fetch_error(fetcher.image(f"http://127.0.0.1:{port}/a.jpg"))
        assert fetcher.counters["retries"] == 2
    assert error.reason == "connection"


# -- redirects ------------------------------------------------------------------


async def test_redirect_chain_is_followed(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_redirects=5)) as fetcher:
        got = await fetcher.image(hostile.url("/chain/5"))
        assert fetcher.counters["redirects"] == 5
    assert got.final_url == hostile.url("/chain/0")
    assert got.url == hostile.url("/chain/5")
    assert got.image_type == "jpeg"


async def test_too_many_redirects(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_redirects=5)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/chain/6")))
    assert error.reason == "redirect_limit"
    assert hostile.log.count("/chain/0") == 0


async def test_redirect_loop_stops_at_the_first_repeat(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_redirects=20)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/loop/a")))
    assert error.reason == "redirect_limit"
    assert hostile.log.count("/loop/a") == 1 and hostile.log.count("/loop/b") == 1


async def test_redirect_to_another_scheme_is_a_bad_url(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/redirect?to=ftp://example.org/a.jpg")))
    assert error.reason == "bad_url"


# -- timeouts: a stalled server never hangs the run -----------------------------


async def test_a_server_that_never_answers_times_out_on_read(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(read_timeout_s=0.4, total_timeout_s=10, retries=3)) as fetcher:
        start = time.monotonic()
        error = await fetch_error(fetcher.image(hostile.url("/hang")))
        elapsed = time.monotonic() - start
    assert error.reason == "timeout"
    assert 0.35 <= elapsed < 1.5
    assert hostile.log.count("/hang") == 1  # a stalled server is not asked again


async def test_a_slow_drip_hits_the_total_timeout(hostile: HostileServer, crawl_settings) -> None:
    # Each byte comes well within the read timeout; only the total bounds it.
    async with Fetcher(crawl_settings(read_timeout_s=0.5, total_timeout_s=1.0)) as fetcher:
        start = time.monotonic()
        error = await fetch_error(fetcher.image(hostile.url("/drip?every=0.05")))
        elapsed = time.monotonic() - start
    assert error.reason == "timeout"
    assert 0.95 <= elapsed < 2.0


async def test_slow_but_in_time_response_succeeds(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(read_timeout_s=1.0)) as fetcher:
        got = await fetcher.image(hostile.url("/photo/obama/obama.jpg?delay=0.3"))
    assert got.image_type == "jpeg"


# -- size caps ------------------------------------------------------------------


async def test_endless_body_stops_at_the_cap(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_image_bytes=2_000_000, total_timeout_s=10)) as fetcher:
        start = time.monotonic()
        error = await fetch_error(fetcher.image(hostile.url("/endless")))
        assert time.monotonic() - start < 3
        assert fetcher.counters["too_large"] == 1
    assert error.reason == "too_large"


async def test_cap_applies_to_streamed_bodies_without_content_length(hostile: HostileServer, crawl_settings) -> None:
    size = len(hostile.photo_bytes())
    async with Fetcher(crawl_settings(max_image_bytes=size - 1)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/photo/obama/obama.jpg?chunked=1")))
        assert error.reason == "too_large"
        assert "more than" in error.detail  # found while streaming, not from a header
    async with Fetcher(crawl_settings(max_image_bytes=size)) as fetcher:
        got = await fetcher.image(hostile.url("/photo/obama/obama.jpg?chunked=1"))
    assert got.body == hostile.photo_bytes()
    assert "Content-Length" not in got.headers


async def test_declared_content_length_over_cap_is_refused_up_front(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_image_bytes=1000)) as fetcher:
        error = await fetch_error(fetcher.image(hostile.url("/photo/obama/obama.jpg")))
    assert error.reason == "too_large"
    assert "Content-Length" in error.detail


async def test_page_cap_is_max_page_bytes(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(max_page_bytes=100_000, total_timeout_s=10)) as fetcher:
        error = await fetch_error(fetcher.page(hostile.url("/endless")))
    assert error.reason == "too_large"


# -- pages and APIs -------------------------------------------------------------


async def test_page_returns_html(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.page(hostile.url("/page.html"))
    assert b"<title>Barack Obama</title>" in got.body
    assert got.image_type is None
    assert got.content_type is not None and got.content_type.startswith("text/html")
    (request,) = [r for r in hostile.log.requests if r.path == "/page.html"]
    assert request.headers["Accept"].startswith("text/html")


async def test_api_json_sends_params_and_the_identifying_user_agent(hostile: HostileServer, crawl_settings) -> None:
    settings = crawl_settings()
    async with Fetcher(settings) as fetcher:
        got = await fetcher.api_json(hostile.url("/api/echo"), {"action": "wbsearchentities", "search": "Obama"})
    assert got["query"] == {"action": "wbsearchentities", "search": "Obama"}
    assert got["user_agent"] == settings.api_user_agent
    assert "application/json" in got["accept"]


async def test_api_calls_skip_robots_txt(faces_dir: Path, crawl_settings) -> None:
    # Wikimedia's robots.txt disallows /w/ for everyone, yet its API policy invites clients.
    async with (
        HostileServer(faces_dir, robots_txt="User-agent: *\nDisallow: /\n") as host,
        Fetcher(crawl_settings()) as fetcher,
    ):
        got = await fetcher.api_json(host.url("/api/echo"), {"q": "1"})
        error = await fetch_error(fetcher.image(host.url("/photo/obama/obama.jpg")))
    assert got["query"] == {"q": "1"}
    assert error.reason == "robots_txt"


async def test_api_text_decodes_the_declared_charset(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        assert await fetcher.api_text(hostile.url("/api/text")) == "café crème"


async def test_api_json_on_a_non_json_body(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        error = await fetch_error(fetcher.api_json(hostile.url("/api/not-json")))
        assert fetcher.counters["bad_json"] == 1
    assert error.reason == "bad_json"


async def test_api_timeout_override(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings(read_timeout_s=5, total_timeout_s=5)) as fetcher:
        start = time.monotonic()
        error = await fetch_error(fetcher.api_json(hostile.url("/hang"), timeout_s=0.3))
        assert time.monotonic() - start < 1.5
    assert error.reason == "timeout"


async def test_api_calls_retry_5xx(hostile: HostileServer, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.api_text(hostile.url("/flaky/api?fail=1&status=502"))
    assert hostile.log.count("/flaky/api") == 2
    assert got  # the photo's bytes, decoded: the point is that the retry happened


# -- bad input ------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://example.org/a.jpg", "http://", "no url at all", "mailto:a@b.c"])
async def test_unfetchable_urls_are_bad_url(crawl_settings, url: str) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        error = await fetch_error(fetcher.image(url))
        assert fetcher.counters["bad_url"] == 1
    assert error.reason == "bad_url"


async def test_fetcher_must_be_opened(crawl_settings) -> None:
    fetcher = Fetcher(crawl_settings())
    with pytest.raises(RuntimeError, match="async with"):
        await fetcher.page("http://127.0.0.1:9/")
