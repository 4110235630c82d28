"""Photo URLs from a list file: txt, csv, tsv or jsonl, read as a stream.

Lists can hold millions of lines, so the file is read in fixed-size chunks
with aiofiles and parsed line by line; memory stays flat whatever its size.
A bad line is logged, counted and skipped; it never ends the read.
"""

from __future__ import annotations

import collections
import csv
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiofiles

from sozy.records import Candidate

from .errors import UrlListError

log = logging.getLogger(__name__)

SOURCE = "urls"
FORMATS = ("txt", "csv", "tsv", "jsonl")
_EXTENSIONS = {
    ".txt": "txt",
    ".list": "txt",
    ".urls": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
URL_COLUMNS = ("url", "image_url")
# A longer line is reported and skipped without being held in memory.
MAX_LINE_BYTES = 64 * 1024
CHUNK_BYTES = 1024 * 1024
# http(s), a host (no credentials), no whitespace; the fetcher checks the rest.
# A regex, not urlsplit: it runs once per line of lists with millions of lines.
_HTTP_URL = re.compile(r"https?://(?:\[[0-9a-f:.]+\]|[^\s/?#@:\[\]]+)(?::\d{1,5})?(?:[/?#]\S*)?\Z", re.IGNORECASE)
# Bad lines logged one by one before only the count goes on.
_LOGGED_BAD_LINES = 20


@dataclass
class UrlListReport:
    """What a read found: lines seen, candidates given, bad lines by reason."""

    lines: int = 0
    candidates: int = 0
    bad: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)
    format: str | None = None

    def bad_line(self, path: Path, lineno: int, reason: str, detail: str = "") -> None:
        self.bad += 1
        self.reasons[reason] += 1
        if self.bad <= _LOGGED_BAD_LINES:
            log.warning("%s:%d: skipped (%s)%s", path, lineno, reason, f": {detail}" if detail else "")
        elif self.bad == _LOGGED_BAD_LINES + 1:
            log.warning("%s: more bad lines; only counting them from now on", path)


class _BadLine(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def format_from_extension(path: Path) -> str | None:
    """``"txt"`` / ``"csv"`` / ``"tsv"`` / ``"jsonl"`` from the file name, or None."""
    return _EXTENSIONS.get(path.suffix.lower())


def sniff_format(first_line: str) -> str:
    """Guess a format from the first non-blank, non-comment line."""
    line = first_line.strip()
    if line.startswith("{"):
        return "jsonl"
    if "\t" in line and _has_url_column(line.split("\t")):
        return "tsv"
    if "," in line and _has_url_column(next(csv.reader([line]))):
        return "csv"
    return "txt"


def _has_url_column(cells: list[str]) -> bool:
    return any(c.strip().lower() in URL_COLUMNS for c in cells)


async def read_url_list(
    path: Path, *, fmt: str | None = None, report: UrlListReport | None = None
) -> AsyncIterator[Candidate]:
    """Stream the candidates of a URL list.

    ``txt``: one URL a line. ``csv`` / ``tsv``: a header row naming a ``url``
    column (or ``image_url``) and optionally ``name``, ``page_url``,
    ``license``, ``attribution``. ``jsonl``: one object a line with the same
    keys. The format comes from ``fmt``, else the extension, else is sniffed
    from the first line. In every format blank lines and lines starting with
    ``#`` are skipped. Only http(s) URLs are accepted.

    Raises ``UrlListError`` when the file cannot be used at all (missing, an
    unknown ``fmt``, a csv/tsv header without a url column); pass ``report``
    to learn how many lines were bad and why.
    """
    path = Path(path)
    report = report if report is not None else UrlListReport()
    if fmt is not None and fmt not in FORMATS:
        raise UrlListError(f"{path}: unknown URL list format {fmt!r} (use one of {', '.join(FORMATS)})")
    if not path.exists() or path.is_dir():
        # Not is_file(): a pipe (`--urls <(zcat list.gz)`) is a fine list.
        raise UrlListError(f"URL list not found: {path}")
    fmt = fmt or format_from_extension(path)
    columns: dict[str, int] | None = None

    async for batch in _line_batches(path):
        for lineno, raw in batch:
            report.lines += 1
            if raw is None:
                report.bad_line(path, lineno, "line_too_long", f"over {MAX_LINE_BYTES} bytes")
                continue
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError:
                report.bad_line(path, lineno, "not_utf8")
                continue
            stripped = text.strip()
            if not stripped or stripped[0] == "#":
                continue
            if fmt is None:
                fmt = sniff_format(stripped)
            if report.format is None:
                report.format = fmt
            try:
                if fmt in ("csv", "tsv") and columns is None:
                    columns = _header(path, text, fmt)
                    continue
                # csv/tsv keep leading separators: an empty first cell is still a cell.
                candidate = _parse(fmt, text if columns is not None else stripped, columns)
            except _BadLine as bad:
                report.bad_line(path, lineno, bad.reason, bad.detail)
                continue
            report.candidates += 1
            yield candidate

    if report.bad > _LOGGED_BAD_LINES:
        log.warning("%s: %d bad lines skipped (%s)", path, report.bad, dict(report.reasons))


async def _line_batches(path: Path) -> AsyncIterator[list[tuple[int, bytes | None]]]:
    """The file's lines, a chunk at a time: (line number, bytes without the newline).

    A line over MAX_LINE_BYTES comes as None, and is never held whole in memory.
    """
    lineno = 0
    pending = b""
    too_long = False
    async with aiofiles.open(path, "rb") as fh:
        while True:
            # read1: what is there now, up to a chunk; a pipe yields lines as they come.
            chunk = await fh.read1(CHUNK_BYTES)
            if not chunk:
                break
            pieces = chunk.split(b"\n")
            pieces[0] = pending + pieces[0]
            pending = pieces.pop()
            batch: list[tuple[int, bytes | None]] = []
            for piece in pieces:
                lineno += 1
                if too_long or len(piece) > MAX_LINE_BYTES:
                    too_long = False
                    batch.append((lineno, None))
                else:
                    batch.append((lineno, piece.rstrip(b"\r")))
            if len(pending) > MAX_LINE_BYTES:
                # Drop the rest of this line as it streams in, instead of buffering it.
                too_long = True
                pending = b""
            if batch:
                yield batch
    if pending or too_long:
        lineno += 1
        yield [(lineno, None if too_long or len(pending) > MAX_LINE_BYTES else pending.rstrip(b"\r"))]


def _header(path: Path, line: str, fmt: str) -> dict[str, int]:
    cells = _split(line, fmt)
    columns = {c.strip().lower(): i for i, c in enumerate(cells)}
    if not any(c in columns for c in URL_COLUMNS):
        raise UrlListError(
            f"{path}: the {fmt} header has no 'url' column (found: {', '.join(cells)}); "
            "the first non-comment line must name the columns"
        )
    return columns


def _split(line: str, fmt: str) -> list[str]:
    delimiter = "," if fmt == "csv" else "\t"
    if '"' not in line:
        return line.split(delimiter)  # no quoting: the same cells, much faster
    try:
        rows = list(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise _BadLine("bad_csv", str(exc)) from None
    return rows[0] if rows else []


def _parse(fmt: str, line: str, columns: dict[str, int] | None) -> Candidate:
    if fmt == "txt":
        if _HTTP_URL.match(line) is None:
            raise _BadLine("bad_url", line[:200])
        return Candidate(image_url=line, source=SOURCE)
    if fmt == "jsonl":
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise _BadLine("bad_json", str(exc)) from None
        if not isinstance(value, dict):
            raise _BadLine("bad_json", "not an object")
        return _candidate(value)
    assert columns is not None
    cells = _split(line, fmt)
    if len(cells) > len(columns):
        raise _BadLine("bad_columns", f"{len(cells)} cells, header has {len(columns)}")
    return _candidate({key: cells[i] for key, i in columns.items() if i < len(cells)})


def _candidate(fields: dict[str, Any]) -> Candidate:
    raw_url = next((fields[k] for k in URL_COLUMNS if fields.get(k)), None)
    if not isinstance(raw_url, str) or not raw_url.strip():
        raise _BadLine("no_url")
    url = raw_url.strip()
    if _HTTP_URL.match(url) is None:
        raise _BadLine("bad_url", url[:200])
    page_url = _text(fields.get("page_url"))
    if page_url is not None and _HTTP_URL.match(page_url) is None:
        page_url = None  # a broken page link loses only the link, not the photo
    return Candidate(
        image_url=url,
        source=SOURCE,
        page_url=page_url,
        name=_text(fields.get("name")),
        license=_text(fields.get("license")),
        attribution=_text(fields.get("attribution")),
    )


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None
