"""Photos already on disk: ``<root>/<person>/<photo>``, named after the folder.

A folder's name is the person's (``Lin-Manuel Miranda/``), or a short key that
``<root>/people.csv`` (``folder,name``) maps to the name people write
(``lin_manuel_miranda`` → ``Lin-Manuel Miranda``). Each photo's URL is
``file:<root's name>/<path under root>`` (``sozy.fetch.local``): it says where
the photo came from without revealing the machine's paths.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path, PurePosixPath

from sozy.config import CrawlSettings
from sozy.fetch.local import folder_url
from sozy.records import Candidate

log = logging.getLogger(__name__)

SOURCE = "folder"
PHOTO_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp"})
DEFAULT_UNNAMED = CrawlSettings().unnamed_folders
# Optional, in the crawled folder: display names for folders named by a short key.
PEOPLE_FILE = "people.csv"


class PeopleFileError(ValueError):
    """``people.csv`` cannot be read or has no ``folder`` and ``name`` columns."""


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


def read_people_file(root: Path) -> dict[str, str | None]:
    """``root/people.csv`` as {folder: display name} ({} without one); an empty name names nobody."""
    path = Path(root) / PEOPLE_FILE
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not {"folder", "name"} <= set(reader.fieldnames or ()):
                raise PeopleFileError(f"{path}: needs a header with the columns folder and name")
            return {
                row["folder"].strip(): " ".join((row["name"] or "").split()) or None
                for row in reader
                if (row.get("folder") or "").strip()
            }
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PeopleFileError(f"{path}: {exc}") from None


def read_folders(
    root: Path, *, unnamed: Collection[str] = DEFAULT_UNNAMED, root_name: str | None = None
) -> Iterator[Candidate]:
    """Candidates for every photo under ``root``, in a stable (sorted) order.

    A photo in ``root/<folder>/`` (or any depth below it) is named after
    ``<folder>``, or what ``people.csv`` says for it; photos directly in
    ``root`` and in ``unnamed`` folders get no name. Its URL is
    ``file:<root_name>/<path under root>`` (``root_name`` defaults to the
    folder's own name). Hidden files and folders are skipped; photo files are
    recognised by extension (the fetcher sniffs the bytes later). Folders that
    cannot be listed are logged and skipped. Raises ``NotADirectoryError`` when
    ``root`` is not a directory, ``PeopleFileError`` for a bad ``people.csv``.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"folder source: {root} is not a directory")
    root = root.resolve()
    prefix = root_name or root.name
    people = read_people_file(root)
    for entry in _sorted_entries(root):
        if entry.is_dir(follow_symlinks=True):
            name = _folder_person(entry.name, people, unnamed)
            for path in _photos_below(Path(entry.path)):
                yield _candidate(root, prefix, path, name)
        elif _is_photo(entry):
            yield _candidate(root, prefix, Path(entry.path), None)


def _folder_person(folder: str, people: Mapping[str, str | None], unnamed: Collection[str]) -> str | None:
    if folder in people:
        return people[folder]
    return person_name(folder, unnamed)


def _candidate(root: Path, prefix: str, path: Path, name: str | None) -> Candidate:
    relative = PurePosixPath(path.relative_to(root).as_posix())
    return Candidate(image_url=folder_url(prefix, relative), source=SOURCE, name=name)


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
