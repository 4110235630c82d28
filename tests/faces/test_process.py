"""Why a worker stopped, in words (``sozy.faces.process``); starting and killing real
workers is test_engine.py's."""

from __future__ import annotations

import signal

from sozy.faces.process import exit_reason


def test_exit_reasons_name_the_signal_and_hint_at_memory_for_a_kill() -> None:
    assert exit_reason(42, 3) == "worker 42 exited with code 3"
    assert exit_reason(42, -signal.SIGSEGV) == "worker 42 was killed by SIGSEGV"
    assert exit_reason(42, -signal.SIGKILL) == "worker 42 was killed by SIGKILL (out of memory?)"
    assert exit_reason(42, -99) == "worker 42 was killed by signal 99"
