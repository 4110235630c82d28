"""What a person sees while the crawl runs.

On a terminal: a block of lines redrawn in place, one per stage, with a bar
(how far the stage is behind discovery), the count and its rate. Anywhere
else (CI, pipes, files): one plain log line every ``log_interval`` seconds.
Log messages printed while the live block is shown go above it
(``sozy.progress``, which ``python -m sozy.store copy`` shows its progress with too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TextIO

from sozy.progress import ProgressDisplay, RateMeter

from .stats import CrawlStats

log = logging.getLogger("sozy.crawl")

BAR_WIDTH = 24


def render_lines(stats: CrawlStats, rates: dict[str, float]) -> list[str]:
    """The live block: one line per stage, then skipped and failed with their top reasons."""
    total = max(stats.discovered, 1)
    rows = [
        ("discovered", stats.discovered, None, ""),
        ("fetched", stats.fetched, stats.fetched / total, _bytes(stats.fetched_bytes)),
        ("embedded", stats.embedded, stats.embedded / total, f"{stats.faces_found} faces found"),
        ("stored", stats.done, stats.done / total, f"{stats.stored} faces, {len(stats.people)} people"),
    ]
    lines = []
    for stage, count, fraction, note in rows:
        bar = _bar(fraction) if fraction is not None else " " * (BAR_WIDTH + 2)
        lines.append(f"{stage:<10} {bar} {count:>8}  {rates.get(stage, 0.0):7.1f}/s  {note}".rstrip())
    lines.append(f"{'skipped':<10} {' ' * (BAR_WIDTH + 2)} {sum(stats.skipped.values()):>8}  {_top(stats.skipped)}")
    lines.append(f"{'failed':<10} {' ' * (BAR_WIDTH + 2)} {sum(stats.failed.values()):>8}  {_top(stats.failed)}")
    if stats.nodes:
        lines.append(f"{'nodes':<10} {' ' * (BAR_WIDTH + 2)} {len(stats.nodes):>8}  {_per_node(stats)}")
    return [line.rstrip() for line in lines]


def render_log_line(stats: CrawlStats, rates: dict[str, float]) -> str:
    """One line for logs: counts and rates of every stage."""
    return (
        f"progress: discovered {stats.discovered}, fetched {stats.fetched} ({rates.get('fetched', 0.0):.1f}/s), "
        f"embedded {stats.embedded} ({rates.get('embedded', 0.0):.1f}/s, {stats.faces_found} faces), "
        f"stored {stats.stored} faces / {stats.done} photos ({rates.get('stored', 0.0):.1f}/s), "
        f"skipped {sum(stats.skipped.values())}, failed {sum(stats.failed.values())}"
        + (f"; embedded per node: {_per_node(stats)}" if stats.nodes else "")
    )


def _per_node(stats: CrawlStats) -> str:
    """Photos embedded on each cluster node (``--ray``)."""
    return ", ".join(f"{name} {counts['photos']}" for name, counts in sorted(stats.nodes.items()))


def stage_counts(stats: CrawlStats) -> dict[str, int]:
    """The counts whose rates the display shows."""
    return {"discovered": stats.discovered, "fetched": stats.fetched, "embedded": stats.embedded, "stored": stats.done}


class Progress:
    """Shows ``stats`` until ``stop``; ``live`` defaults to whether ``stream`` is a terminal."""

    def __init__(
        self,
        stats: CrawlStats,
        *,
        stream: TextIO | None = None,
        live: bool | None = None,
        refresh: float = 0.5,
        log_interval: float = 15.0,
    ) -> None:
        self.stats = stats
        self.display = ProgressDisplay(stream, live=live, plain=log.info)
        self.live = self.display.live
        self.refresh = refresh
        self.log_interval = log_interval
        self._meter = RateMeter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crawl-progress")

    async def stop(self) -> None:
        """Stop updating; the live block is drawn one last time and left on screen."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.live:
            self._show(final=True)

    async def _run(self) -> None:
        interval = self.refresh if self.live else self.log_interval
        while True:
            await asyncio.sleep(interval)
            self._show()

    def _show(self, *, final: bool = False) -> None:
        rates = self._meter.update(stage_counts(self.stats))
        lines = render_lines(self.stats, rates) if self.live else []
        self.display.show(lines, render_log_line(self.stats, rates), final=final)


def _bar(fraction: float) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"


def _top(counter: dict[str, int], n: int = 3) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {v}" for k, v in items[:n])
    return text + (", …" if len(items) > n else "")


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return ""
