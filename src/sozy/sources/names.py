"""Name lists (``--names FILE``): one person or Q-id a line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


def read_names(path: Path) -> Iterator[str]:
    """The names in a list file, in order, each once.

    Blank lines and lines starting with ``#`` are skipped; inner whitespace is
    collapsed; repeats (compared case-insensitively) are dropped. The file is
    read line by line, so long lists are fine. Raises ``FileNotFoundError``
    for a missing file and ``UnicodeDecodeError`` for one that is not UTF-8.
    """
    seen: set[str] = set()
    with Path(path).open(encoding="utf-8-sig") as fh:
        for line in fh:
            name = " ".join(line.split())
            if not name or name.startswith("#"):
                continue
            key = name.casefold()
            if key not in seen:
                seen.add(key)
                yield name
