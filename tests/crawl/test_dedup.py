"""The same bytes at several URLs, finishing in the worst order: the best-ranked URL owns them.

These drive the store stage (``Crawler._accept`` / ``_flush``) directly, so the
order in which copies reach it is exact rather than left to network and engine
timing. Everything else is real: the photo's faces come from the dlib engine,
the outcomes go to the SQLite state, the faces to the embedded store.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sozy.config import Settings
from sozy.crawl.ownership import Analysed
from sozy.crawl.pipeline import Crawler, _Photo
from sozy.crawl.plan import CrawlPlan
from sozy.crawl.runner import state_path
from sozy.crawl.state import CrawlState, Job
from sozy.faces import FaceEngine
from sozy.fetch import Fetcher
from sozy.records import Candidate
from sozy.store import open_store

from .conftest import state_rows, stored_points

PHOTO = "obama/obama.jpg"
COPIES = 4


@pytest.fixture
async def engine(make_settings: Callable[..., Settings]) -> AsyncIterator[FaceEngine]:
    async with FaceEngine(make_settings(**{"engine.workers": 1}).engine) as eng:
        yield eng


async def _analysed_copies(crawler: Crawler, state: CrawlState, body: bytes) -> list[Analysed]:
    """COPIES unnamed URLs serving ``body``, discovered in order, each run through the real embed stage."""
    sha = hashlib.sha256(body).hexdigest()
    jobs: list[Job] = state.add_jobs(
        (url, Candidate(image_url=url, source="urls")) for url in (f"http://copies.test/{i}.jpg" for i in range(COPIES))
    )
    out = []
    for job in jobs:
        analysed = await crawler._embed(_Photo(job, body, sha))
        assert analysed is not None and analysed.records, "the photo has a face"
        out.append(analysed)
    return out


@pytest.mark.parametrize("flush_after", [None, 1, 2], ids=["one-batch", "flush-after-1", "flush-after-2"])
async def test_copies_finishing_in_reverse_rank_order_all_end_with_the_first_as_owner(
    flush_after: int | None,
    faces_dir: Path,
    make_settings: Callable[..., Settings],
    engine: FaceEngine,
) -> None:
    settings = make_settings(**{"engine.workers": 1})
    body = (faces_dir / PHOTO).read_bytes()
    plan = CrawlPlan()
    store: Any = await open_store(settings)
    try:
        with CrawlState(state_path(settings, plan)) as state:
            async with Fetcher(settings.crawl) as fetcher:
                crawler = Crawler(settings, plan, state=state, fetcher=fetcher, engine=engine, store=store)
                try:
                    copies = await _analysed_copies(crawler, state, body)
                    # The last discovered finishes first: each later one takes the content over
                    # from the one before, in the batch or (after a flush) in the store.
                    for n, item in enumerate(reversed(copies), start=1):
                        await crawler._accept(item)
                        if n == flush_after:
                            await crawler._flush()
                    await crawler._flush()
                finally:
                    crawler._db.close()
    finally:
        await store.close(optimize=False)

    rows = state_rows(settings)
    owner, *others = (c.job.url for c in copies)
    assert not [u for u, r in rows.items() if r.status == "pending"]
    assert (rows[owner].status, rows[owner].faces) == ("done", len(copies[0].records))
    for url in others:
        assert (rows[url].status, rows[url].reason, rows[url].duplicate_of) == (
            "skipped",
            "duplicate_content",
            owner,
        ), url
    # Point ids come from the bytes and the box: the owner's faces replaced any a copy had stored.
    points = await stored_points(settings)
    assert len(points) == len(copies[0].records)
    assert {p.payload["image_url"] for p in points} == {owner}
