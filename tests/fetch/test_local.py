"""file:// URLs: local photos with the same cap and sniffing as HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from sozy.fetch import Fetcher, FetchError
from sozy.fetch.local import file_url_path


async def test_reads_a_local_photo(faces_dir: Path, crawl_settings) -> None:
    path = faces_dir / "biden" / "biden.jpg"
    async with Fetcher(crawl_settings()) as fetcher:
        got = await fetcher.image(path.as_uri())
        assert fetcher.counters["file"] == 1 and fetcher.counters["requests"] == 0
    assert got.body == path.read_bytes()
    assert got.image_type == "jpeg"
    assert got.final_url == path.as_uri()


async def test_every_shared_photo_reads_and_sniffs(face_photos, crawl_settings) -> None:
    async with Fetcher(crawl_settings()) as fetcher:
        for photo in face_photos:
            got = await fetcher.image(photo.path.as_uri())
            assert got.image_type == {"RGBA": "png"}.get(photo.mode, got.image_type)
            assert len(got.body) == photo.path.stat().st_size


async def test_escaped_path(tmp_path: Path, faces_dir: Path, crawl_settings) -> None:
    path = tmp_path / "Barack Obama (2012) é.jpg"
    path.write_bytes((faces_dir / "obama" / "obama.jpg").read_bytes())
    assert "%20" in path.as_uri()
    assert file_url_path(path.as_uri()) == path
    async with Fetcher(crawl_settings()) as fetcher:
        assert (await fetcher.image(path.as_uri())).image_type == "jpeg"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: d / "missing.jpg", "file_not_found"),
        (lambda d: d, "file_unreadable"),
        (lambda d: _write(d / "notes.jpg", b"just some text, not a photo"), "not_an_image"),
        (lambda d: _write(d / "empty.jpg", b""), "empty_body"),
        (lambda d: _write(d / "big.jpg", b"\xff\xd8\xff" + bytes(5000)), "too_large"),
    ],
)
async def test_local_failures(tmp_path: Path, crawl_settings, make, reason: str) -> None:
    async with Fetcher(crawl_settings(max_image_bytes=4096)) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.image(make(tmp_path).as_uri())
        assert fetcher.counters[reason] == 1
    assert info.value.reason == reason


async def test_a_fifo_is_not_read(tmp_path: Path, crawl_settings) -> None:
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    async with Fetcher(crawl_settings()) as fetcher:
        with pytest.raises(FetchError, match="file_unreadable"):
            await fetcher.image(fifo.as_uri())


async def test_web_pages_cannot_point_at_local_files(faces_dir: Path, crawl_settings) -> None:
    uri = (faces_dir / "obama" / "obama.jpg").as_uri()
    async with Fetcher(crawl_settings()) as fetcher:
        with pytest.raises(FetchError, match="bad_url"):
            await fetcher.image(uri, referer="https://example.org/page.html")
        with pytest.raises(FetchError, match="bad_url"):
            await fetcher.page(uri)
        assert (await fetcher.image(uri, referer=faces_dir.as_uri())).image_type == "jpeg"


@pytest.mark.parametrize("url", ["file://otherhost/etc/x.jpg", "file://"])
def test_bad_file_urls(url: str) -> None:
    with pytest.raises(FetchError, match="bad_url"):
        file_url_path(url)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
