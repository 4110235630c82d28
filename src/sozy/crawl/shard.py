"""``--shard I/N``: split one crawl over N machines with no coordinator.

Every crawler reads the same input and keeps only its part: a name (or
Q-id) belongs to shard ``sha1(name) mod N``, a photo URL from a URL list,
page or folder to ``sha1(normalized URL) mod N``. The hash is stable across
machines, Python versions and runs, so the N parts are disjoint and together
cover the input. Each shard keeps its own state file, so each resumes alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 1 <= I <= N")

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """``"2/8"`` → ``Shard(2, 8)``; raises ValueError with a readable message."""
        match = _SPEC.match(spec)
        if not match:
            raise ValueError(f"--shard wants I/N (e.g. 1/4), got {spec!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def owns(self, key: str) -> bool:
        """Whether ``key`` (a name key or a normalized URL) is this shard's."""
        return shard_of(key, self.count) == self.index

    def state_file(self, base: str) -> str:
        """``crawl.sqlite`` → ``crawl-shard-2-of-8.sqlite``: one state per shard."""
        stem, dot, suffix = base.rpartition(".")
        if not dot or not stem:
            return f"{base}-shard-{self.index}-of-{self.count}"
        return f"{stem}-shard-{self.index}-of-{self.count}.{suffix}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(key: str, count: int) -> int:
    """The 1-based shard of ``key`` among ``count`` shards."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def name_key(name: str) -> str:
    """The key a person's name is known by: whitespace collapsed, case folded.

    "Barack  Obama" and "barack obama" are one unit of work and one shard's.
    """
    return " ".join(name.split()).casefold()
