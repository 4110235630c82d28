"""sozy.crawl.progress: the crawl's live block and log line, shown through sozy.progress."""

from __future__ import annotations

import io
from collections import Counter

from sozy.crawl.progress import Progress, render_lines, render_log_line
from sozy.crawl.stats import CrawlStats


def _stats() -> CrawlStats:
    stats = CrawlStats(discovered=10, fetched=8, fetched_bytes=3 * 1024**2, embedded=6, faces_found=7, stored=5, done=4)
    stats.skipped = Counter({"robots": 1})
    stats.failed = Counter({"timeout": 2, "decode": 1})
    stats.people = {"Q76", "rose leslie"}
    return stats


def test_the_block_has_a_line_per_stage_with_its_share_of_what_was_discovered() -> None:
    lines = render_lines(_stats(), {"fetched": 2.0})
    assert [line.split()[0] for line in lines] == ["discovered", "fetched", "embedded", "stored", "skipped", "failed"]
    assert "[###################-----]" in lines[1] and "2.0/s" in lines[1] and "3.0 MB" in lines[1]
    assert lines[3].endswith("5 faces, 2 people")
    assert lines[5].endswith("3  timeout 2, decode 1")


def test_the_log_line_has_every_stage() -> None:
    line = render_log_line(_stats(), {"stored": 1.5})
    assert line.startswith("progress: discovered 10, fetched 8 (0.0/s), embedded 6 (0.0/s, 7 faces)")
    assert "stored 5 faces / 4 photos (1.5/s), skipped 1, failed 3" in line


async def test_stopping_a_live_display_leaves_the_last_block_on_screen() -> None:
    stream = io.StringIO()
    progress = Progress(_stats(), stream=stream, live=True, refresh=3600)
    progress.start()
    await progress.stop()
    shown = stream.getvalue()
    assert shown.count("\n") == 6
    assert shown.splitlines()[3] == "\x1b[2K" + render_lines(_stats(), {})[3]


async def test_stopping_a_plain_display_writes_nothing_to_the_stream() -> None:
    stream = io.StringIO()
    progress = Progress(_stats(), stream=stream, live=False, log_interval=3600)
    progress.start()
    await progress.stop()
    assert stream.getvalue() == ""
