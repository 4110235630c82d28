"""The face engine, started when the first photo arrives.

Starting the engine loads the models in every worker process: seconds a
crawl with nothing to do (every list row done, every name looked up, a host
down) need not spend. ``LazyEngine`` wraps a ``FaceEngine`` and starts it on
the first ``embed``; until then it answers ``capacity`` from the settings,
so the crawl can size its queues. A start that fails raises
``EngineStartFailed`` on every ``embed``: the crawl stops with exit code 4 and
the photo stays pending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence

from sozy.config import EngineSettings
from sozy.faces import FaceEngine, plan_workers
from sozy.faces.errors import FaceEngineError
from sozy.records import PhotoFaces


class EngineStartFailed(Exception):
    """The face engine could not start when the first photo arrived."""


class LazyEngine:
    """A ``FaceEngine`` that starts with its first ``embed`` call."""

    def __init__(self, settings: EngineSettings, engine: FaceEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or FaceEngine(settings)
        self._lock = asyncio.Lock()
        self._failure: EngineStartFailed | None = None
        self._started = False
        self._closed = False

    @property
    def started(self) -> bool:
        return self._started

    @property
    def capacity(self) -> int:
        """Tasks the engine takes at once: the real figure once started, else the CPU plan's
        (exact on a CPU; a GPU engine takes more, and the crawl adds embed tasks once it starts)."""
        if self.started:
            return self.engine.capacity
        on_cpu = dataclasses.replace(self.settings, device="cpu")
        return plan_workers(on_cpu, cpu_count=os.cpu_count() or 1, cuda_build=False, gpu_count=0).capacity

    @property
    def workers(self) -> int:
        return self.engine.workers if self.started else 0

    @property
    def device(self) -> str:
        return self.engine.device if self.started else "not started"

    @property
    def model_id(self) -> str:
        return self.engine.model_id if self.started else ""

    async def ensure_started(self) -> None:
        async with self._lock:
            if self._failure is not None:
                raise self._failure
            if self._started:
                return
            if self._closed:
                raise EngineStartFailed("the face engine was closed before it started")
            try:
                await self.engine.start()
            except (FaceEngineError, ValueError, OSError) as exc:
                self._failure = EngineStartFailed(f"the face engine could not start: {exc}")
                await self.engine.close()
                raise self._failure from None
            self._started = True

    async def start(self) -> None:
        """Start now (tests and callers that want the engine up front)."""
        await self.ensure_started()

    async def embed(self, data: bytes) -> PhotoFaces:
        await self.ensure_started()
        return await self.engine.embed(data)

    async def embed_many(self, items: Sequence[bytes]) -> list[PhotoFaces | FaceEngineError]:
        await self.ensure_started()
        return await self.engine.embed_many(items)

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
        if self._started:
            await self.engine.close()
