"""A source whose host is down stops early, says so once, and leaves its work for the next run.

Offline, or with a dead endpoint, every name lookup fails the same way after
its retries. ``Outages`` counts connection failures (refused, reset, DNS,
TLS, timeouts) of each kind of lookup in a row: after ``HOST_DOWN_AFTER``
of them on one host with no success between, that kind is stopped, one
line names the host, the error and what to check, and the lookups of that
run of failures go back to pending with those not yet made, so the same
command resumes them all once the host is back. ``FoldedWarnings`` logs the first few
failures of each kind and reason and counts the rest.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from sozy.fetch import FetchError

log = logging.getLogger("sozy.crawl")

# Connection failures in a row, on one host, with no success, before its source stops.
HOST_DOWN_AFTER = 8
# Failures logged one by one per (kind, reason) before the rest are only counted.
WARNINGS_SHOWN = 3
# Reasons that say "the host cannot be reached", not "this one request went wrong".
UNREACHABLE = frozenset({"connection", "dns", "tls", "timeout"})


@dataclass(frozen=True)
class HostDown:
    """Why one kind of lookup stopped: its host, the last error, and where the host comes from."""

    kind: str
    host: str
    reason: str
    error: str
    failures: int
    # (unit key, reason) of the lookups that failed in the run that found the host down.
    failed: tuple[tuple[str, str], ...] = ()

    def message(self, hint: str) -> str:
        return (
            f"{self.kind} lookups stopped: {self.host} cannot be reached ({self.reason}: {self.error}) "
            f"after {self.failures} failures in a row and no success. Check the network, or {hint}. "
            "Those lookups and the ones not made stay pending: the same command resumes them"
        )

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "reason": self.reason, "error": self.error, "failures": self.failures}


class Outages:
    """Connection failures in a row per kind of lookup, and the kinds stopped because of them."""

    def __init__(self, limit: int = HOST_DOWN_AFTER) -> None:
        self.limit = limit
        self.down: dict[str, HostDown] = {}
        # kind -> (host, the (unit key, reason) of each failure in a row on it)
        self._run: dict[str, tuple[str, list[tuple[str, str]]]] = {}

    def success(self, kind: str) -> None:
        self._run.pop(kind, None)

    def failure(self, kind: str, exc: BaseException, key: str = "") -> HostDown | None:
        """Count a failed lookup (of unit ``key``); the outage when this failure stops its kind
        (once), else None."""
        host = unreachable_host(exc)
        if host is None:
            self._run.pop(kind, None)  # the host answered: it is up
            return None
        last_host, failed = self._run.get(kind, (host, []))
        if last_host != host:
            failed = []
        assert isinstance(exc, FetchError)
        failed.append((key, exc.reason))
        self._run[kind] = (host, failed)
        if len(failed) < self.limit or kind in self.down:
            return None
        outage = HostDown(kind, host, exc.reason, exc.detail or str(exc), len(failed), tuple(failed))
        self.down[kind] = outage
        return outage

    def stopped(self, kind: str) -> bool:
        return kind in self.down


def unreachable_host(exc: BaseException) -> str | None:
    """The host a connection-class fetch error could not reach, else None."""
    if not isinstance(exc, FetchError) or exc.reason not in UNREACHABLE:
        return None
    parts = urlsplit(exc.url)
    return parts.netloc or exc.url


class FoldedWarnings:
    """The first few warnings of each key, then only a count; ``flush`` logs the counts."""

    def __init__(self, shown: int = WARNINGS_SHOWN) -> None:
        self.shown = shown
        self.counts: Counter[tuple[str, str]] = Counter()

    def warn(self, kind: str, reason: str, message: str, *args: object) -> None:
        self.counts[(kind, reason)] += 1
        count = self.counts[(kind, reason)]
        if count <= self.shown:
            log.warning(message, *args)
            if count == self.shown:
                log.warning("further %s lookups failing with %s are counted, not logged one by one", kind, reason)
        else:
            log.debug(message, *args)

    def flush(self) -> None:
        for (kind, reason), count in sorted(self.counts.items()):
            if count > self.shown:
                log.warning(
                    "%d %s lookups failed with %s (%d more than logged above)", count, kind, reason, count - self.shown
                )
        self.counts.clear()
