"""Local photos, read with the same size cap and sniffing as downloads.

Two forms of URL: ``file:///abs/path`` (a URL list may name any local file)
and ``file:<folder>/<path>``, a photo under a crawled folder known by its
name only (``file:faces/obama/obama.jpg``), so what is stored and published
says where the photo came from without revealing the machine's paths. The
fetcher resolves the second form through its ``local_roots`` (folder name →
absolute path), which the crawl fills from ``--folders`` and its state.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import aiofiles
import aiofiles.os

from .body import sniff_or_fail
from .errors import BAD_URL, EMPTY_BODY, FILE_NOT_FOUND, FILE_UNREADABLE, TOO_LARGE, FetchError
from .fetched import Fetched


def folder_url(root_name: str, relative: PurePosixPath) -> str:
    """The URL of a photo at ``relative`` under the crawled folder named ``root_name``."""
    return "file:" + quote(f"{root_name}/{relative.as_posix()}")


def file_url_path(url: str, roots: Mapping[str, Path] | None = None) -> Path:
    """The local path of a ``file:///abs`` URL (host empty or localhost) or of a
    ``file:<folder>/<path>`` URL, resolved through ``roots``."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
        raise FetchError(BAD_URL, url, "only file:///path, file://localhost/path or file:<folder>/<path>")
    if not parts.path:
        raise FetchError(BAD_URL, url, "no path")
    path = unquote(parts.path)
    if path.startswith("/"):
        return Path(path)
    root_name, _, rest = path.partition("/")
    relative = PurePosixPath(rest)
    if not rest or relative.is_absolute() or ".." in relative.parts:
        raise FetchError(BAD_URL, url, "not a photo under a crawled folder")
    root = (roots or {}).get(root_name)
    if root is None:
        raise FetchError(FILE_NOT_FOUND, url, f"no crawled folder named {root_name!r} (crawl it with --folders)")
    return root.joinpath(*relative.parts)


async def read_local_image(url: str, max_bytes: int, roots: Mapping[str, Path] | None = None) -> Fetched:
    """Read a local photo; the result looks like an HTTP 200 fetch of it."""
    path = file_url_path(url, roots)
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
    return url[:5].lower() == "file:"
