"""Counters of one crawl run, shared by the pipeline, the progress display and the summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

# The stages as a person sees them, in pipeline order.
STAGES = ("discovered", "fetched", "embedded", "stored")


@dataclass
class CrawlStats:
    """What this run did so far. Only the event loop thread writes it."""

    started: float = field(default_factory=time.monotonic)
    # Photo URLs handed to the fetch stage (new candidates and pending ones from earlier runs).
    discovered: int = 0
    # Of those, the ones an earlier run found and left pending (or failed, with --retry-failed).
    resumed: int = 0
    # Photos fetched (bytes in memory).
    fetched: int = 0
    fetched_bytes: int = 0
    # Photos the engine analysed, and the faces it found in them.
    embedded: int = 0
    faces_found: int = 0
    # Faces upserted in the store, and photos marked done.
    stored: int = 0
    done: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    # Discovery units (names looked up, lists read, pages walked) by outcome.
    units_done: int = 0
    units_failed: Counter[str] = field(default_factory=Counter)
    # Distinct people (person_id) of the faces stored this run.
    people: set[str] = field(default_factory=set)
    # Consensus this run: source claims rejected, unnamed faces attached to a person.
    relabelled: Counter[str] = field(default_factory=Counter)
    # Per cluster node (``--ray``): photos embedded, faces found, photos failed there.
    nodes: dict[str, Counter[str]] = field(default_factory=dict)
    # When each stage first and last did something (monotonic), for per-stage rates.
    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str, count: int = 1) -> None:
        """Count ``count`` items through ``stage`` now."""
        now = time.monotonic()
        self.first.setdefault(stage, now)
        self.last[stage] = now
        setattr(self, stage, getattr(self, stage) + count)

    def node(self, name: str) -> Counter[str]:
        """The counts of cluster node ``name``."""
        counts = self.nodes.get(name)
        if counts is None:
            counts = self.nodes[name] = Counter()
        return counts

    def fail(self, reason: str) -> None:
        self.failed[reason] += 1

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def rate(self, stage: str) -> float:
        """Items per second through ``stage`` over the run so far (0 before any)."""
        elapsed = self.elapsed
        return getattr(self, stage) / elapsed if elapsed > 0 else 0.0

    def stage_seconds(self, stage: str) -> float:
        """Seconds from the stage's first to its last item (its active span)."""
        if stage not in self.first:
            return 0.0
        return self.last[stage] - self.first[stage]
