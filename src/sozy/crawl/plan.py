"""What one crawl run crawls: its sources, how much of them, and the kinds of discovery unit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .shard import Shard
from .state import UnitKind

NAME, SEARCH, TOP, URL_LIST, PAGE, FOLDER = (
    UnitKind.NAME,
    UnitKind.SEARCH,
    UnitKind.TOP,
    UnitKind.URL_LIST,
    UnitKind.PAGE,
    UnitKind.FOLDER,
)
# Sources read again by every run, for the rows added since.
GROWING = frozenset({URL_LIST, FOLDER})


@dataclass(frozen=True)
class CrawlPlan:
    """What one run crawls: its sources and how much of them."""

    names_file: Path | None = None
    top: int = 0
    occupations: tuple[str, ...] = ()
    search_engine: bool = False
    url_lists: tuple[Path, ...] = ()
    pages: tuple[str, ...] = ()
    folders: tuple[Path, ...] = ()
    retry_failed: bool = False
    limit: int | None = None
    shard: Shard | None = None

    @property
    def has_sources(self) -> bool:
        return bool(self.names_file or self.top or self.url_lists or self.pages or self.folders)

    @property
    def name_kinds(self) -> tuple[UnitKind, ...]:
        """The lookups every name gets: Wikidata, and image search with ``--search-engine``."""
        return (NAME, SEARCH) if self.search_engine else (NAME,)

    @property
    def lookup_kinds(self) -> tuple[UnitKind, ...]:
        """Unit kinds whose pending units this run looks up."""
        if not (self.names_file or self.top):
            return ()
        return self.name_kinds

    def describe(self) -> list[str]:
        """The sources as short strings, for logs and the summary."""
        out = [f"folders:{p}" for p in self.folders] + [f"urls:{p}" for p in self.url_lists]
        out += [f"pages:{u}" for u in self.pages]
        if self.names_file:
            out.append(f"names:{self.names_file}")
        if self.top:
            out.append(f"top:{self.top}" + (f" ({', '.join(self.occupations)})" if self.occupations else ""))
        if self.search_engine:
            out.append("search-engine")
        if self.retry_failed:
            out.append("retry-failed")
        return out
