"""PageSource against the local celebrity site: depth, same-site links, manners, failures."""

from __future__ import annotations

import io
from collections import Counter

from PIL import Image

from sozy.config import CrawlSettings
from sozy.fetch import Fetcher
from sozy.records import Candidate
from sozy.sources import PageSource
from tests.servers.celebrity import CelebritySite


async def _crawl(site: CelebritySite, *starts: str, **changes: object) -> tuple[list[Candidate], Counter[str]]:
    settings = CrawlSettings(**{"page_depth": 1, **changes})  # type: ignore[arg-type]
    async with Fetcher(settings) as fetcher:
        source = PageSource(fetcher, settings)
        found = [c async for c in source.candidates(list(starts) or [site.url("/")])]
    return found, source.counters


async def test_depth_one_finds_exactly_the_expected_images(celebrity: CelebritySite) -> None:
    found, counters = await _crawl(celebrity)
    expected = celebrity.expected_images(depth=1)
    assert [c.image_url for c in found] == list(expected)  # once each, breadth-first order
    for candidate in found:
        want = expected[candidate.image_url]
        assert candidate.source == "pages"
        assert candidate.name is None  # pages name no one; alt text is kept for later
        assert (candidate.page_url, candidate.page_title, candidate.alt) == (want.page_url, want.page_title, want.alt)
    # Every person page's portrait: the srcset's original, not its 320 px default.
    portraits = [c for c in found if c.alt == "Barack Obama"]
    assert [c.image_url for c in portraits] == [celebrity.url("/photos/full/obama/obama-1080p.jpg")]
    assert counters["page_failed_http_404"] == 1  # /missing.html, and the crawl went on
    assert counters["page_meta_noimageindex"] == 1  # /private.html
    assert counters["page_not_html"] == 1  # /data.json
    # Faces in what was found: every single-person photo is there, with who is in it.
    people = Counter(p for e in expected.values() for p in e.people)
    assert people["obama"] >= 5 and people["lin_manuel_miranda"] == 1


async def test_depth_zero_and_two(celebrity: CelebritySite) -> None:
    start_only, _ = await _crawl(celebrity, page_depth=0)
    assert [c.image_url for c in start_only] == list(celebrity.expected_images(depth=0))
    assert celebrity.requested_paths() == ["/robots.txt", "/"]  # no link followed
    deep, _ = await _crawl(celebrity, page_depth=2)
    assert [c.image_url for c in deep] == list(celebrity.expected_images(depth=2))
    assert len(deep) > len(celebrity.expected_images(depth=1))
    # The galleries' thumbnails link to full-size photos: those are proposed, not the thumbnails.
    gallery = [c for c in deep if c.page_url.endswith("/people/obama/gallery.html")]
    assert len(gallery) == 7 and all("/photos/full/" in c.image_url for c in gallery)


async def test_only_same_site_pages_and_never_nofollow_links(celebrity: CelebritySite) -> None:
    await _crawl(celebrity, page_depth=3)
    assert celebrity.requested_paths(host="localhost") == []  # the partner site is another site
    paths = celebrity.requested_paths()
    assert "/secret.html" not in paths  # linked only from a nofollow page
    assert paths.count("/people/obama.html") == 1  # each page once, however often linked
    # Only pages were fetched: the source proposes images, it does not download them.
    assert not any(p.startswith(("/photos/", "/static/")) for p in paths)


async def test_robots_meta_can_be_turned_off(celebrity: CelebritySite) -> None:
    settings = CrawlSettings(page_depth=2, respect_robots=False)
    async with Fetcher(settings) as fetcher:
        source = PageSource(fetcher, settings)
        [c async for c in source.candidates([celebrity.url("/")])]
    assert "/secret.html" in celebrity.requested_paths()
    assert source.counters["page_meta_noimageindex"] == 0


async def test_max_pages_caps_the_crawl(celebrity: CelebritySite) -> None:
    found, counters = await _crawl(celebrity, page_depth=2, max_pages=3)
    pages = [p for p in celebrity.requested_paths() if p.endswith(".html") or p == "/"]
    assert len(pages) == 3
    assert counters["pages"] == 3 and counters["page_skipped_max_pages"] > 0
    assert {c.page_url for c in found} <= {celebrity.url(p) for p in pages}


async def test_bad_and_failing_start_urls_do_not_stop_the_others(celebrity: CelebritySite) -> None:
    found, counters = await _crawl(
        celebrity,
        "mailto:someone@example.org",
        celebrity.url("/missing.html"),
        "http://127.0.0.1:9/unreachable.html",  # the discard port: nothing listens
        celebrity.url("/groups.html"),
        page_depth=0,
        retries=0,
        connect_timeout_s=2.0,
    )
    assert counters["page_bad_url"] == 1
    assert counters["page_failed_http_404"] == 1
    assert counters["page_failed_robots_unavailable"] == 1  # unreachable host: its robots.txt first
    assert [c.alt for c in found] == [
        "Barack Obama and Joe Biden",
        "Kit Harington and Rose Leslie",
        "Barack Obama and Joe Biden",
    ]


async def test_the_found_images_are_real_photos_at_full_size(celebrity: CelebritySite, faces_dir) -> None:
    found, _ = await _crawl(celebrity)
    settings = CrawlSettings()
    async with Fetcher(settings) as fetcher:
        for candidate in found:
            want = celebrity.expected_images(depth=1)[candidate.image_url]
            fetched = await fetcher.image(candidate.image_url, referer=candidate.page_url)
            assert fetched.image_type in {"jpeg", "png", "webp"}
            if want.photo is not None and "/full/" in candidate.image_url:
                assert fetched.body == (faces_dir / want.photo.path).read_bytes()
            with Image.open(io.BytesIO(fetched.body)) as img:
                assert img.width > 100
