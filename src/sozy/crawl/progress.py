"""What a person sees while the crawl runs.

On a terminal: a block of lines redrawn in place, one per stage, with a bar
(how far the stage is behind discovery), the count and its rate. Anywhere
else (CI, pipes, files): one plain log line every ``log_interval`` seconds.
Log messages printed while the live block is shown go above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from .stats import CrawlStats

log = logging.getLogger("sozy.crawl")

BAR_WIDTH = 24
_CLEAR_LINE = "\x1b[2K"
_UP = "\x1b[{n}A"


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


class _RateMeter:
    """Rates over a sliding window, so the display follows the current speed."""

    def __init__(self, window: float = 10.0) -> None:
        self.window = window
        self._samples: list[tuple[float, dict[str, int]]] = []

    def update(self, stats: CrawlStats) -> dict[str, float]:
        now = time.monotonic()
        counts = {
            "discovered": stats.discovered,
            "fetched": stats.fetched,
            "embedded": stats.embedded,
            "stored": stats.done,
        }
        self._samples.append((now, counts))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.pop(0)
        then, old = self._samples[0]
        span = now - then
        if span <= 0:
            return {k: 0.0 for k in counts}
        return {k: (counts[k] - old[k]) / span for k in counts}


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
        self.stream = stream if stream is not None else sys.stderr
        self.live = _is_tty(self.stream) if live is None else live
        self.refresh = refresh
        self.log_interval = log_interval
        self._meter = _RateMeter()
        self._shown = 0  # lines of the live block on screen now
        self._task: asyncio.Task[None] | None = None
        self._patched: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def start(self) -> None:
        if self.live:
            self._patch_log_handlers()
        self._task = asyncio.create_task(self._run(), name="crawl-progress")

    async def stop(self) -> None:
        """Stop updating; the live block is drawn one last time and left on screen."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.live:
            self._draw()
            self._shown = 0
            self._unpatch_log_handlers()

    async def _run(self) -> None:
        interval = self.refresh if self.live else self.log_interval
        while True:
            await asyncio.sleep(interval)
            if self.live:
                self._draw()
            else:
                log.info(render_log_line(self.stats, self._meter.update(self.stats)))

    def _draw(self) -> None:
        lines = render_lines(self.stats, self._meter.update(self.stats))
        out = [self._erase()] + [f"{_CLEAR_LINE}{line}\n" for line in lines]
        self.stream.write("".join(out))
        self.stream.flush()
        self._shown = len(lines)

    def _erase(self) -> str:
        if not self._shown:
            return ""
        return (
            _UP.format(n=self._shown)
            + "\r"
            + "".join(f"{_CLEAR_LINE}\n" for _ in range(self._shown))
            + _UP.format(n=self._shown)
            + "\r"
        )

    # Log records must not be drawn over by the block: handlers writing to our
    # stream go through a proxy that erases the block first and redraws after.
    def _patch_log_handlers(self) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is self.stream:
                self._patched.append((handler, handler.stream))
                handler.setStream(_AboveBlock(self))

    def _unpatch_log_handlers(self) -> None:
        for handler, stream in self._patched:
            handler.setStream(stream)
        self._patched.clear()

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Write something above the live block (used by the log proxy)."""
        shown = self._shown
        if shown:
            self.stream.write(self._erase())
            self._shown = 0
        yield
        if shown:
            self._draw()


class _AboveBlock:
    """A stream that prints log records above the live block."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def write(self, text: str) -> int:
        with self._progress.above():
            return self._progress.stream.write(text)

    def flush(self) -> None:
        self._progress.stream.flush()


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


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
