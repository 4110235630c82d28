"""Asyncio helpers the crawl's stages share: the state off the event loop, tasks settled, queues drained."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from .state import CrawlState

P = ParamSpec("P")
T = TypeVar("T")


class StateThread:
    """Runs ``CrawlState`` calls on one dedicated thread, off the event loop."""

    def __init__(self, state: CrawlState) -> None:
        self.state = state
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawl-state")

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True)


async def settle(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait for tasks to end, however they end (their errors are handled by callbacks)."""
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def drain(queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            queue.get_nowait()
