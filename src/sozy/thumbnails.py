"""Where face thumbnails live: ``<data_dir>/thumbnails/<point id>.jpg``.

The crawler writes them, the API serves them and takedowns remove them; the
naming lives here, below all three, so none of them imports another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

THUMBNAIL_DIR = "thumbnails"
# Point ids are lowercase canonical UUIDs (uuid5); nothing else names a thumbnail,
# so a request or payload can never point outside the folder.
_POINT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RELATIVE = re.compile(rf"{THUMBNAIL_DIR}/({_POINT_ID.pattern})\.jpg")


def thumbnail_path(point_id: str) -> str:
    """The thumbnail's path relative to the data dir (what the payload stores)."""
    return f"{THUMBNAIL_DIR}/{point_id}.jpg"


def is_thumbnail_id(point_id: str) -> bool:
    return _POINT_ID.fullmatch(point_id) is not None


def thumbnail_id(relative: str) -> str | None:
    """The point id in a payload's ``thumbnails/<id>.jpg``, or None for anything else."""
    found = _RELATIVE.fullmatch(relative)
    return found.group(1) if found else None


def thumbnail_file(data_dir: Path, point_id: str) -> Path | None:
    """The file for this point id, or None when the id is not one (no path tricks)."""
    if not is_thumbnail_id(point_id):
        return None
    return Path(data_dir) / thumbnail_path(point_id)


def remove_thumbnails(data_dir: Path, point_ids: Iterable[str]) -> int:
    """Delete the thumbnails of these faces; returns how many files were removed."""
    removed = 0
    for point_id in point_ids:
        path = thumbnail_file(data_dir, str(point_id))
        if path is None:
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # the face had no thumbnail (crawl.thumbnails off, or it failed)
        removed += 1
    return removed
