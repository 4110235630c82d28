"""file:// URLs: photos in local folders, read with the same size cap and sniffing."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiofiles
import aiofiles.os

from .body import sniff_or_fail
from .errors import BAD_URL, EMPTY_BODY, FILE_NOT_FOUND, FILE_UNREADABLE, TOO_LARGE, FetchError
from .fetched import Fetched


def file_url_path(url: str) -> Path:
    """The local path of a ``file://`` URL (host must be empty or localhost)."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise FetchError(BAD_URL, url, "only file:///path or file://localhost/path")
    if not parts.path:
        raise FetchError(BAD_URL, url, "no path")
    return Path(unquote(parts.path))


async def read_local_image(url: str, max_bytes: int) -> Fetched:
    """Read a local photo; the result looks like an HTTP 200 fetch of it."""
    path = file_url_path(url)
    try:
        info = await aiofiles.os.stat(path)
    except FileNotFoundError:
        raise FetchError(FILE_NOT_FOUND, url) from None
    except OSError as exc:
        raise FetchError(FILE_UNREADABLE, url, exc.strerror or str(exc)) from None
    # Only regular files: a FIFO or device could block or never end.
    if not stat.S_ISREG(info.st_mode):
        raise FetchError(FILE_UNREADABLE, url, "not a regular file")
    if info.st_size > max_bytes:
        raise FetchError(TOO_LARGE, url, f"{info.st_size} bytes > {max_bytes}")
    if info.st_size == 0:
        raise FetchError(EMPTY_BODY, url)
    try:
        async with aiofiles.open(path, "rb") as fh:
            # max_bytes + 1: a file that grew since stat() is still caught.
            body = await fh.read(max_bytes + 1)
    except OSError as exc:
        raise FetchError(FILE_UNREADABLE, url, exc.strerror or str(exc)) from None
    if len(body) > max_bytes:
        raise FetchError(TOO_LARGE, url, f"more than {max_bytes} bytes")
    kind = sniff_or_fail(body[:16], url)
    return Fetched(
        url=url,
        final_url=url,
        status=200,
        content_type=None,
        body=body,
        headers={"Content-Length": str(len(body))},
        image_type=kind,
    )


def is_file_url(url: str) -> bool:
    return url[:7].lower() == "file://"


