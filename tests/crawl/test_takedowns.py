"""A crawl honours the store's takedowns: it does not fetch, embed or store what was taken down."""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256
from pathlib import Path
from typing import Any

import aiohttp

from sozy.config import Settings
from sozy.crawl.pipeline import Crawler, _Photo
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.runner import state_path
from sozy.crawl.state import CrawlState
from sozy.faces import FaceEngine
from sozy.fetch import Fetcher
from sozy.records import Candidate
from sozy.store import open_store
from sozy.store.selectors import Takedown
from sozy.thumbnails import thumbnail_file

from .conftest import state_rows, stored_points

PHOTOS = {
    "obama/obama.jpg": "Barack Obama",  # taken down by name: never fetched
    "biden/biden2.jpg": "Joe Biden",  # these bytes taken down (sha256): fetched, never embedded
    "kit_harington/kit-harington2.jpg": "Kit Harington",
}


async def test_taken_down_photos_are_skipped_and_the_rest_is_crawled(
    site: Any, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    settings = make_settings(**{"crawl.thumbnails": True})
    urls = {path: site.url(f"/photos/full/{path}") for path in PHOTOS}
    async with aiohttp.ClientSession() as session, session.get(urls["biden/biden2.jpg"]) as response:
        biden_sha = sha256(await response.read()).hexdigest()
    site.requests.clear()

    store = await open_store(settings)
    await store.add_takedowns(
        [
            Takedown({"name": "Barack Obama"}, "2026-01-01T00:00:00Z"),
            Takedown({"image_sha256": biden_sha}, "2026-01-01T00:00:00Z"),
        ]
    )
    await store.close()

    url_list = tmp_path / "photos.csv"
    url_list.write_text("url,name\n" + "".join(f"{urls[p]},{name}\n" for p, name in PHOTOS.items()), encoding="utf-8")
    await crawl(settings, CrawlPlan(url_lists=(url_list,)))

    rows = state_rows(settings)
    assert (rows[urls["obama/obama.jpg"]].status, rows[urls["obama/obama.jpg"]].reason) == ("skipped", "taken_down")
    assert (rows[urls["biden/biden2.jpg"]].status, rows[urls["biden/biden2.jpg"]].reason) == ("skipped", "taken_down")
    assert rows[urls["kit_harington/kit-harington2.jpg"]].status == "done"
    requested = site.requested_paths()
    assert "/photos/full/obama/obama.jpg" not in requested  # not even downloaded
    assert "/photos/full/biden/biden2.jpg" in requested

    points = await stored_points(settings)
    assert {p.payload["name"] for p in points} == {"Kit Harington"}
    # Thumbnails only for what was stored: nothing was cropped from the taken-down photos.
    thumbnails = sorted(p.name for p in (settings.data_path / "thumbnails").rglob("*.jpg"))
    assert thumbnails == sorted(thumbnail_file(settings.data_path, p.id).name for p in points)  # type: ignore[union-attr]


async def test_a_takedown_made_while_a_photo_is_in_flight_is_enforced_at_the_store(
    faces_dir: Path, make_settings: Callable[..., Settings]
) -> None:
    """The photo passed the checks before the takedown; the store refuses its faces and its
    thumbnails are removed. Driven stage by stage, so the order is exact."""
    settings = make_settings(**{"engine.workers": 1, "crawl.thumbnails": True})
    body = (faces_dir / "obama/obama.jpg").read_bytes()
    url = "http://photos.test/obama.jpg"
    store: Any = await open_store(settings)
    try:
        async with FaceEngine(settings.engine) as engine, Fetcher(settings.crawl) as fetcher:
            with CrawlState(state_path(settings, CrawlPlan())) as state:
                crawler = Crawler(settings, CrawlPlan(), state=state, fetcher=fetcher, engine=engine, store=store)
                try:
                    [job] = state.add_jobs([(url, Candidate(image_url=url, name="Barack Obama", source="urls"))])
                    analysed = await crawler._embed(_Photo(job, body, sha256(body).hexdigest()))
                    assert analysed is not None and analysed.records
                    crops = [thumbnail_file(settings.data_path, r.id) for r in analysed.records]
                    assert all(c is not None and c.is_file() for c in crops)
                    await store.delete(name="Barack Obama")  # the takedown lands now
                    await crawler._accept(analysed)
                    await crawler._flush()
                finally:
                    crawler._db.close()
        assert await store.count() == 0
    finally:
        await store.close(optimize=False)
    row = state_rows(settings)[url]
    assert (row.status, row.reason) == ("skipped", "taken_down")
    assert not any(c.is_file() for c in crops if c is not None)


async def test_a_person_taken_down_stays_out_of_a_recrawl_and_of_new_photos(
    site: Any, tmp_path: Path, make_settings: Callable[..., Settings], crawl: Callable[..., Any]
) -> None:
    """Obama is taken down after a crawl that stored him named and, unnamed, in a group photo;
    a re-crawl of the same photos and of new ones (another spelling, no name, another group
    photo) stores none of his faces and all of the others'."""
    settings = make_settings()
    first = tmp_path / "first.csv"
    first.write_text(
        "url,name\n"
        f"{site.url('/photos/full/obama/obama.jpg')},Barack Obama\n"
        f"{site.url('/photos/full/obama/obama2.jpg')},Barack Obama\n"
        f"{site.url('/photos/full/group/biden-and-obama.jpg')},\n"
        f"{site.url('/photos/full/biden/biden.jpg')},Joe Biden\n",
        encoding="utf-8",
    )
    await crawl(settings, CrawlPlan(url_lists=(first,)))
    store = await open_store(settings)
    try:
        assert len(await store.delete(name="barack_obama")) == 3  # two named, one in the group photo
    finally:
        await store.close()

    second = tmp_path / "second.csv"
    second.write_text(
        "url,name\n"
        f"{site.url('/photos/full/obama/obama.jpg')},Barack Obama\n"  # the same photo: not even fetched
        f"{site.url('/photos/full/obama/obama3.jpg')},Obama\n"  # a new photo under another spelling
        f"{site.url('/photos/full/obama/obama4.jpg')},\n"  # a new photo, no name
        f"{site.url('/photos/full/group/obama-biden-and-one-more.jpg')},\n"
        f"{site.url('/photos/full/kit_harington/kit-harington1.jpg')},Kit Harington\n",
        encoding="utf-8",
    )
    await crawl(make_settings(**{"crawl.state_file": "second.sqlite"}), CrawlPlan(url_lists=(second,)))
    rows = state_rows(make_settings(**{"crawl.state_file": "second.sqlite"}))
    for path in ("obama/obama.jpg", "obama/obama3.jpg", "obama/obama4.jpg"):
        row = rows[site.url(f"/photos/full/{path}")]
        assert (row.status, row.reason) == ("skipped", "taken_down"), path
    assert rows[site.url("/photos/full/group/obama-biden-and-one-more.jpg")].status == "done"

    points = await stored_points(settings)
    group = [p for p in points if p.payload["image_url"].endswith("obama-biden-and-one-more.jpg")]
    assert len(group) == 2  # Biden and the stranger; Obama's face was refused
    assert {p.payload["person_id"] for p in points} >= {"joe biden", "kit harington"}
    assert not any(p.payload["person_id"] in ("barack obama", "obama") for p in points)
