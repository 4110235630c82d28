"""``--retry-failed``: a later run fetches again only the photos that failed, and those that
recovered end done; done, skipped and still-pending photos are left alone.

Both runs are real ``python -m sozy.crawl`` processes against the hostile host
served by this test process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers.hostile import HostileServer

from .conftest import cli_args, state_rows, stored_points
from .test_resume import finish, start

DONE = "/photo/biden/biden.jpg"
RECOVERS = "/flaky/back?fail=2"  # 503 for both attempts of run 1 (crawl.retries = 1), then a photo
GONE = "/status/404"
NOT_A_PHOTO = "/html-as-jpeg.jpg"
LEFT_PENDING = "/photo/rose_leslie/rose-leslie1.jpg"  # after --limit 4


@pytest.mark.slow
async def test_retry_failed_refetches_only_failures_and_they_end_done(
    tmp_path: Path,
    hostile: HostileServer,
    make_settings,
) -> None:
    urls = tmp_path / "photos.txt"
    urls.write_text("".join(hostile.url(p) + "\n" for p in (DONE, RECOVERS, GONE, NOT_A_PHOTO, LEFT_PENDING)))
    settings = make_settings(**{"engine.workers": 1})
    base = cli_args(settings)

    code, _, err = await finish(await start([*base, "--urls", str(urls), "--limit", "4"]))
    assert code == 0, err
    first = state_rows(settings)
    status = {
        p: (first[hostile.url(p)].status, first[hostile.url(p)].reason)
        for p in (DONE, RECOVERS, GONE, NOT_A_PHOTO, LEFT_PENDING)
    }
    assert status == {
        DONE: ("done", None),
        RECOVERS: ("failed", "http_5xx"),
        GONE: ("failed", "http_404"),
        NOT_A_PHOTO: ("skipped", "not_an_image"),
        LEFT_PENDING: ("pending", None),
    }
    hostile.log.reset()

    code, _, err = await finish(await start([*base, "--retry-failed"]))
    assert code == 0, err
    rows = state_rows(settings)
    # Only the two failures were asked for again.
    assert {path for path, n in hostile.log.counts().items() if n and path != "/robots.txt"} == {"/flaky/back", GONE}
    back, gone = rows[hostile.url(RECOVERS)], rows[hostile.url(GONE)]
    assert (back.status, back.reason, back.attempts) == ("done", None, 2)
    assert back.faces == 1
    assert (gone.status, gone.reason, gone.attempts) == ("failed", "http_404", 2)
    for path in (DONE, NOT_A_PHOTO, LEFT_PENDING):
        assert rows[hostile.url(path)] == first[hostile.url(path)], path
    stored = {p.payload["image_url"] for p in await stored_points(settings)}
    assert stored == {hostile.url(DONE), hostile.url(RECOVERS)}
