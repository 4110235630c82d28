"""read_url_list: every format, bad lines skipped and counted, and streaming."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sozy.records import Candidate
from sozy.sources import UrlListError, UrlListReport, read_url_list
from sozy.sources.urls import MAX_LINE_BYTES, sniff_format


async def _read(path: Path, **kwargs: object) -> tuple[list[Candidate], UrlListReport]:
    report = UrlListReport()
    found = [c async for c in read_url_list(path, report=report, **kwargs)]  # type: ignore[arg-type]
    return found, report


async def test_txt_with_comments_blank_lines_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "photos.txt"
    path.write_bytes(
        "\ufeff# celebrity photos\r\n"
        "https://img.example.org/a.jpg\r\n"
        "\r\n"
        "   https://img.example.org/b.jpg?size=large#frag   \n"
        "   # an indented comment\n"
        "ftp://img.example.org/c.jpg\n"
        "not a url\n"
        "https://img.example.org/d.jpg extra words\n"
        "http://[::1]:8080/e.png\n"
        "https://user@img.example.org/f.jpg\n"
        "HTTPS://IMG.example.org/g.jpg".encode()  # no newline at the end
    )
    found, report = await _read(path)
    assert [c.image_url for c in found] == [
        "https://img.example.org/a.jpg",
        "https://img.example.org/b.jpg?size=large#frag",
        "http://[::1]:8080/e.png",
        "HTTPS://IMG.example.org/g.jpg",
    ]
    assert {c.source for c in found} == {"urls"}
    assert all(c.name is None and c.page_url is None for c in found)
    assert (report.lines, report.candidates, report.bad, report.format) == (11, 4, 4, "txt")
    assert report.reasons == {"bad_url": 4}


async def test_csv_with_header_optional_columns_and_quoting(tmp_path: Path) -> None:
    path = tmp_path / "photos.csv"
    path.write_text(
        textwrap.dedent("""\
        # exported from the archive
        Name,URL,Page_URL,License,Attribution,Notes
        Barack Obama,https://img.example.org/obama.jpg,https://news.example.org/obama,CC BY 2.0,"Souza, Pete",x
        ,https://img.example.org/unknown.jpg,,,,
        "Kit Harington",https://img.example.org/kit.jpg,not-a-page,,,
        Too,https://img.example.org/x.jpg,,,,,,,,
        Short,https://img.example.org/short.jpg
        No URL,,,,,
        "Broken ""quote,https://img.example.org/q.jpg
        """)
    )
    found, report = await _read(path)
    assert found == [
        Candidate(
            "https://img.example.org/obama.jpg",
            "urls",
            "https://news.example.org/obama",
            "Barack Obama",
            license="CC BY 2.0",
            attribution="Souza, Pete",
        ),
        Candidate("https://img.example.org/unknown.jpg", "urls"),
        # A broken page link costs the link, not the photo.
        Candidate("https://img.example.org/kit.jpg", "urls", name="Kit Harington"),
        Candidate("https://img.example.org/short.jpg", "urls", name="Short"),
    ]
    assert report.reasons == {"bad_columns": 1, "no_url": 1, "bad_csv": 1}
    assert report.format == "csv"


async def test_tsv_and_image_url_column(tmp_path: Path) -> None:
    path = tmp_path / "photos.tsv"
    path.write_text(
        "name\timage_url\tlicense\n"
        "Rose Leslie\thttps://img.example.org/a.jpg\tCC BY 2.0\n"
        "\thttps://img.example.org/b.jpg\t\n"  # no name: the empty first cell still counts
        "Kit, Harington\thttps://img.example.org/c.jpg\n"
    )
    found, report = await _read(path)
    assert [(c.image_url, c.name, c.license) for c in found] == [
        ("https://img.example.org/a.jpg", "Rose Leslie", "CC BY 2.0"),
        ("https://img.example.org/b.jpg", None, None),
        ("https://img.example.org/c.jpg", "Kit, Harington", None),
    ]
    assert report.bad == 0


async def test_jsonl_good_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "photos.jsonl"
    lines = [
        json.dumps(
            {
                "url": "https://img.example.org/a.jpg",
                "name": "Joe Biden",
                "license": "Public domain",
                "attribution": "Adam Schultz",
                "page_url": "https://example.org/biden",
                "extra": [1],
            }
        ),
        '{"url": "https://img.example.org/b.jpg", "name": 42, "license": null}',
        '{"url": "https://img.example.org/c.jpg",',  # truncated
        '["https://img.example.org/d.jpg"]',
        '{"name": "No URL"}',
        '{"url": 17}',
        '{"url": "javascript:alert(1)"}',
    ]
    path.write_text("\n".join(lines) + "\n")
    found, report = await _read(path)
    assert found == [
        Candidate(
            "https://img.example.org/a.jpg",
            "urls",
            "https://example.org/biden",
            "Joe Biden",
            license="Public domain",
            attribution="Adam Schultz",
        ),
        Candidate("https://img.example.org/b.jpg", "urls", name="42"),
    ]
    assert report.reasons == {"bad_json": 2, "no_url": 2, "bad_url": 1}


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        ('{"url": "https://a.example.org/1.jpg"}\n', "jsonl"),
        ("url,name\nhttps://a.example.org/1.jpg,A\n", "csv"),
        ("name\turl\nA\thttps://a.example.org/1.jpg\n", "tsv"),
        ("# list\nhttps://a.example.org/1.jpg\n", "txt"),
    ],
)
async def test_format_is_sniffed_without_a_known_extension(tmp_path: Path, content: str, fmt: str) -> None:
    path = tmp_path / "photos.data"
    path.write_text(content)
    found, report = await _read(path)
    assert [c.image_url for c in found] == ["https://a.example.org/1.jpg"]
    assert report.format == fmt


def test_sniff_format() -> None:
    assert sniff_format("https://a.example.org/x,y.jpg") == "txt"  # a comma in a URL is no header
    assert sniff_format(" URL , name") == "csv"


async def test_an_explicit_format_beats_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "photos.txt"
    path.write_text('{"url": "https://a.example.org/1.jpg", "name": "A"}\n')
    found, _ = await _read(path, fmt="jsonl")
    assert [(c.image_url, c.name) for c in found] == [("https://a.example.org/1.jpg", "A")]


async def test_unusable_lists_raise_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UrlListError, match="not found"):
        await _read(tmp_path / "missing.txt")
    with pytest.raises(UrlListError, match="not found"):
        await _read(tmp_path)
    headerless = tmp_path / "photos.csv"
    headerless.write_text("https://a.example.org/1.jpg,Someone\n")
    with pytest.raises(UrlListError, match="no 'url' column"):
        await _read(headerless)
    with pytest.raises(UrlListError, match="unknown URL list format 'xml'"):
        await _read(headerless, fmt="xml")


async def test_overlong_and_undecodable_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "photos.txt"
    with path.open("wb") as fh:
        fh.write(b"https://a.example.org/1.jpg\n")
        fh.write(b"https://a.example.org/" + b"x" * (3 * MAX_LINE_BYTES) + b".jpg\n")
        fh.write(b"https://a.example.org/\xff\xfe.jpg\n")
        fh.write(b"https://a.example.org/2.jpg\n")
        fh.write(b"y" * (MAX_LINE_BYTES + 10))  # a last line without newline, too long too
    found, report = await _read(path)
    assert [c.image_url for c in found] == ["https://a.example.org/1.jpg", "https://a.example.org/2.jpg"]
    assert report.reasons == {"line_too_long": 2, "not_utf8": 1}
    assert report.lines == 5


async def test_many_bad_lines_are_counted_not_all_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "photos.txt"
    path.write_text("".join(f"bad line {i}\n" for i in range(500)) + "https://a.example.org/ok.jpg\n")
    found, report = await _read(path)
    assert len(found) == 1 and report.bad == 500
    warnings = [r for r in caplog.records if r.name == "sozy.sources.urls"]
    assert 20 <= len(warnings) <= 23
    assert "500 bad lines" in warnings[-1].getMessage()


async def test_the_list_is_consumed_as_it_arrives(tmp_path: Path) -> None:
    """Through a pipe: the first URL comes out before the rest is even written."""
    fifo = tmp_path / "urls.fifo"
    os.mkfifo(fifo)
    first_seen = threading.Event()

    def writer() -> None:
        with fifo.open("w") as fh:
            fh.write("https://a.example.org/first.jpg\n")
            fh.flush()
            # A reader that wanted the whole file first would never get here.
            assert first_seen.wait(10), "the reader waited for the end of the list"
            for i in range(1000):
                fh.write(f"https://a.example.org/{i}.jpg\n")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        found = []
        async for candidate in read_url_list(fifo):
            found.append(candidate.image_url)
            first_seen.set()
        assert found[0] == "https://a.example.org/first.jpg" and len(found) == 1001
    finally:
        first_seen.set()
        await asyncio.to_thread(thread.join, 10)


_MEASURE = """
import asyncio, resource, sys
from pathlib import Path
from sozy.sources import read_url_list, UrlListReport

async def main(path):
    report = UrlListReport()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = 0
    async for _ in read_url_list(path, report=report):
        count += 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(count, report.bad, (after - before) * 1024)

asyncio.run(main(Path(sys.argv[1])))
"""


@pytest.mark.slow
def test_a_million_line_list_streams_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "million.csv"
    with path.open("w") as fh:
        fh.write("url,name\n")
        for i in range(1_000_000):
            fh.write(f"https://img{i % 97}.example.org/photos/{i:07d}.jpg,Person {i % 5000}\n")
        fh.write("not-a-url,Someone\n")
    size = path.stat().st_size
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, timeout=240, check=True
    )
    count, bad, grown = (int(v) for v in run.stdout.split())
    assert (count, bad) == (1_000_000, 1)
    # The list is ~60 MB; reading it whole would grow the process by more than that.
    assert size > 50_000_000
    assert grown < 16 * 1024 * 1024, f"memory grew by {grown / 1e6:.1f} MB reading a {size / 1e6:.0f} MB list"
