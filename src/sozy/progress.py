"""What a person sees while a long command runs: lines redrawn in place on a terminal,
plain lines anywhere else (CI, pipes, files).

Both long commands show their progress through ``ProgressDisplay``: a crawl (a block of
lines, one per stage: ``sozy.crawl.progress``) and a store copy (one line:
``python -m sozy.store copy``). Log records written to the display's stream while its
block is shown go above the block instead of through it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TextIO

_CLEAR_LINE = "\x1b[2K"
_UP = "\x1b[{n}A"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressDisplay:
    """Shows progress on ``stream`` (default stderr): ``live`` (default: whether it is a terminal),
    a block of lines redrawn in place; otherwise each update goes to ``plain`` as one line
    (default: written to the stream). ``every_s`` leaves out updates closer together than that,
    except a ``final`` one."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        live: bool | None = None,
        plain: Callable[[str], object] | None = None,
        every_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = is_terminal(self.stream) if live is None else live
        self._plain = plain if plain is not None else self._write_line
        self.every_s = every_s
        self._clock = clock
        self._last = -float("inf")
        self._lines: list[str] = []
        self._shown = 0  # lines of the live block on screen now
        self._patched: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def show(self, lines: Sequence[str], plain: str | None = None, *, final: bool = False) -> bool:
        """Show these lines (live) or ``plain`` (else the lines joined by "; "); False when left
        out as too soon after the last. A ``final`` live block stays on screen."""
        now = self._clock()
        if not final and now - self._last < self.every_s:
            return False
        self._last = now
        if self.live:
            if not self._patched:
                self._patch_log_handlers()
            self._draw(lines)
            if final:
                self.close()
        else:
            self._plain(plain if plain is not None else "; ".join(lines))
        return True

    def close(self) -> None:
        """Leave the live block on screen as it is, and give log records their stream back."""
        self._shown = 0
        self._unpatch_log_handlers()

    def _write_line(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, lines: Sequence[str]) -> None:
        self._lines = list(lines)
        self.stream.write(self._erase() + "".join(f"{_CLEAR_LINE}{line}\n" for line in self._lines))
        self.stream.flush()
        self._shown = len(self._lines)

    def _erase(self) -> str:
        if not self._shown:
            return ""
        up = _UP.format(n=self._shown)
        return up + "\r" + f"{_CLEAR_LINE}\n" * self._shown + up + "\r"

    @contextlib.contextmanager
    def above(self) -> Iterator[None]:
        """Write something above the live block (used by the log proxy)."""
        shown = self._shown
        if shown:
            self.stream.write(self._erase())
            self._shown = 0
        yield
        if shown:
            self._draw(self._lines)

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


class _AboveBlock:
    """A stream that prints log records above the live block."""

    def __init__(self, display: ProgressDisplay) -> None:
        self._display = display

    def write(self, text: str) -> int:
        with self._display.above():
            return self._display.stream.write(text)

    def flush(self) -> None:
        self._display.stream.flush()


class RateMeter:
    """Rates of some counts over a sliding window, so a display follows the current speed."""

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._samples: list[tuple[float, dict[str, int]]] = []

    def update(self, counts: Mapping[str, int]) -> dict[str, float]:
        """Record the counts now; their rates per second over the window."""
        now = self._clock()
        self._samples.append((now, dict(counts)))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.pop(0)
        then, old = self._samples[0]
        span = now - then
        if span <= 0:
            return {k: 0.0 for k in counts}
        return {k: (counts[k] - old.get(k, 0)) / span for k in counts}
