"""sozy.progress: the display both long commands (a crawl, a store copy) show their progress with."""

from __future__ import annotations

import io
import logging

from sozy.progress import ProgressDisplay, RateMeter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_most_every_interval_and_always_the_final_one() -> None:
    stream, clock = io.StringIO(), Clock()
    display = ProgressDisplay(stream, live=False, every_s=2.0, clock=clock)
    assert display.show(["copied 1"])
    clock.now += 1.0
    assert not display.show(["copied 2"])  # too soon
    clock.now += 1.0
    assert display.show(["copied 3"], "copied three")
    assert display.show(["copied 4"], final=True)  # the last one is never left out
    assert stream.getvalue() == "copied 1\ncopied three\ncopied 4\n"


def test_plain_lines_can_go_to_a_log_instead() -> None:
    seen: list[str] = []
    display = ProgressDisplay(io.StringIO(), live=False, plain=seen.append)
    display.show(["a", "b"], "a and b")
    display.show(["c", "d"])
    assert seen == ["a and b", "c; d"]


def test_a_live_block_is_redrawn_in_place() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, live=True)
    display.show(["one", "two"])
    first = stream.getvalue()
    assert first == "\x1b[2Kone\n\x1b[2Ktwo\n"
    display.show(["three", "four"], final=True)
    redraw = stream.getvalue()[len(first) :]
    # Up two lines, clear both, up again, then the new block.
    assert redraw.startswith("\x1b[2A\r\x1b[2K\n\x1b[2K\n\x1b[2A\r")
    assert redraw.endswith("\x1b[2Kthree\n\x1b[2Kfour\n")
    display.show(["five"])  # after a final block a new one starts below it: nothing is erased
    assert stream.getvalue()[len(first) + len(redraw) :] == "\x1b[2Kfive\n"


def test_log_records_go_above_the_live_block_and_get_their_stream_back() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        display = ProgressDisplay(stream, live=True)
        display.show(["block"])
        logging.getLogger("sozy.test").warning("a log record")
        after_log = stream.getvalue()
        # The block is erased, the record written, the block drawn again below it.
        assert after_log.endswith("\x1b[1A\r\x1b[2K\n\x1b[1A\ra log record\n\x1b[2Kblock\n")
        display.close()
        assert handler.stream is stream
        logging.getLogger("sozy.test").warning("plain again")
        assert stream.getvalue() == after_log + "plain again\n"
    finally:
        root.removeHandler(handler)


def test_rates_follow_the_last_window() -> None:
    clock = Clock()
    meter = RateMeter(window=10.0, clock=clock)
    assert meter.update({"stored": 0}) == {"stored": 0.0}
    clock.now += 5
    assert meter.update({"stored": 50}) == {"stored": 10.0}
    clock.now += 5
    assert meter.update({"stored": 60}) == {"stored": 6.0}
    clock.now += 10
    # The samples older than the window are dropped: the rate is over the last 10 seconds, not all 20.
    assert meter.update({"stored": 80}) == {"stored": 2.0}
