"""Photos already on disk: ``<root>/<person>/<photo>``, named after the folder."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterator
from pathlib import Path

from sozy.config import CrawlSettings
from sozy.records import Candidate

log = logging.getLogger(__name__)

SOURCE = "folder"
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp"})
DEFAULT_UNNAMED = CrawlSettings().unnamed_folders


def person_name(folder: str, unnamed: Collection[str] = DEFAULT_UNNAMED) -> str | None:
    """The display name a folder stands for: ``kit_harington`` → ``Kit Harington``.

    Underscores become spaces; an all-lower-case name is title-cased, a name
    with capitals is kept as written (``LeBron_James`` → ``LeBron James``).
    Folders in ``unnamed`` (compared case-insensitively) give None.
    """
    name = " ".join(folder.replace("_", " ").split())
    if not name or name.lower() in {u.lower() for u in unnamed}:
        return None
    return name.title() if name == name.lower() else name


def read_folders(root: Path, *, unnamed: Collection[str] = DEFAULT_UNNAMED) -> Iterator[Candidate]:
    """Candidates for every photo under ``root``, in a stable (sorted) order.

    A photo in ``root/<folder>/`` (or any depth below it) is named after
    ``<folder>``; photos directly in ``root`` and in ``unnamed`` folders get no
    name. Hidden files and folders are skipped; photo files are recognised by
    extension (the fetcher sniffs the bytes later). Folders that cannot be
    listed are logged and skipped. Raises ``NotADirectoryError`` when ``root``
    is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"folder source: {root} is not a directory")
    root = root.resolve()
    for entry in _sorted_entries(root):
        if entry.is_dir(follow_symlinks=True):
            name = person_name(entry.name, unnamed)
            for path in _photos_below(Path(entry.path)):
                yield _candidate(path, name)
        elif _is_photo(entry):
            yield _candidate(Path(entry.path), None)


def _candidate(path: Path, name: str | None) -> Candidate:
    return Candidate(image_url=path.as_uri(), source=SOURCE, name=name)


def _photos_below(folder: Path) -> Iterator[Path]:
    for entry in _sorted_entries(folder):
        if entry.is_dir(follow_symlinks=False):
            yield from _photos_below(Path(entry.path))
        elif _is_photo(entry):
            yield Path(entry.path)


def _is_photo(entry: os.DirEntry[str]) -> bool:
    return entry.is_file() and os.path.splitext(entry.name)[1].lower() in PHOTO_EXTENSIONS


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        log.warning("folder source: cannot list %s: %s", folder, exc)
        return []
    return sorted(entries, key=lambda e: e.name)
