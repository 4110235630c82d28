"""The face engine's worker pool: keeps ``plan.workers`` processes running, hands them
queued tasks, and survives them.

- a worker runs one task (or one batch, on a GPU) at a time; a task that
  outlives ``task_timeout_s`` fails with :class:`TaskTimeout` and its worker is
  killed; a worker that dies (crash, ``os._exit``, OOM kill) fails only the
  task it was running with :class:`WorkerDied`; either way a replacement starts
  (with backoff while replacements keep failing) and the other workers carry on;
- ``close()`` fails what waits with :class:`EngineClosed` and stops every worker;
  an ``atexit`` hook and the workers' own parent-death signal make sure none
  outlives the process.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import dataclasses
import itertools
import logging
import os
import signal
import weakref
from typing import Any

from sozy.backoff import backoff_seconds
from sozy.config import EngineSettings
from sozy.faces.devices import worker_env
from sozy.faces.errors import EngineClosed, TaskFailed, TaskTimeout, WorkerDied
from sozy.faces.plan import WorkerPlan
from sozy.faces.process import WorkerProcess, exit_reason, read_frame, start_worker
from sozy.faces.tasks import Task, fail, settle, take_batch, task_message
from sozy.faces.worker import WorkerConfig, encode_frame

# The face engine's records go under its name, whichever module writes them.
log = logging.getLogger("sozy.faces.engine")

# How long close() lets idle workers exit on their own before killing them.
CLOSE_GRACE_S = 2.0
# Waits between attempts to start a replacement worker that keeps failing: from this, doubling.
RESPAWN_BACKOFF_BASE_S = 0.5
RESPAWN_BACKOFF_MAX_S = 30.0

_LIVE_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


@atexit.register
def _kill_workers_at_exit() -> None:
    """Last resort when an engine was never closed: no worker outlives the interpreter."""
    for pool in list(_LIVE_POOLS):
        pool.kill_all_now()


class WorkerPool:
    """Worker processes for one engine, the queue of tasks they take, and their supervision.

    ``stats`` counts batches, tasks sent, the largest batch, timeouts, worker deaths
    and respawns. ``test_hooks`` lets workers accept tasks that crash or hang them.
    """

    def __init__(
        self,
        settings: EngineSettings,
        plan: WorkerPlan,
        stats: collections.Counter[str],
        *,
        test_hooks: bool = False,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.stats = stats
        self.workers: list[WorkerProcess] = []
        self.closed = False
        self._test_hooks = test_hooks
        self._pending: collections.deque[Task] = collections.deque()
        self._dispatch_scheduled = False
        self._respawns: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        _LIVE_POOLS.add(self)

    async def start(self) -> list[BaseException]:
        """Start every worker; what kept any from starting (empty when all did)."""
        started = await asyncio.gather(
            *(self._spawn(slot) for slot in range(self.plan.workers)), return_exceptions=True
        )
        return [r for r in started if isinstance(r, BaseException)]

    def submit(self, kind: str, payload: Any) -> asyncio.Future[Any]:
        """Queue a task; the future gets its result or its error."""
        task = Task(kind, payload, self._loop.create_future())
        self._pending.append(task)
        self._schedule_dispatch()
        return task.future

    async def close(self) -> None:
        """Fail waiting tasks with :class:`EngineClosed` and stop every worker."""
        self.closed = True
        for respawn in self._respawns:
            respawn.cancel()
        error = EngineClosed("the face engine was closed")
        while self._pending:
            fail(self._pending.popleft(), error)
        workers, self.workers = self.workers, []
        for w in workers:
            busy = bool(w.running)
            w.retired = True
            self._finish(w, error)
            w.writer.close()  # end of input: an idle worker exits by itself
            if busy:  # its task was failed above; nothing is worth waiting for
                w.kill()
        await asyncio.gather(*(_stop(w) for w in workers), return_exceptions=True)
        await asyncio.gather(*self._respawns, return_exceptions=True)
        _LIVE_POOLS.discard(self)

    def kill_all_now(self) -> None:
        """Kill every live worker at once (from atexit, when the event loop may be gone: plain os.kill)."""
        for w in self.workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)

    # -- dispatching --------------------------------------------------------------------------

    def _schedule_dispatch(self) -> None:
        # Deferred to the next loop turn so tasks submitted together leave together
        # (one batch on a GPU worker).
        if not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self.closed:
            return
        for w in self.workers:
            if not self._pending:
                return
            if w.idle:
                self._send(w, take_batch(self._pending, self.plan.batch))

    def _send(self, w: WorkerProcess, tasks: list[Task]) -> None:
        if not tasks:
            return
        w.token += 1
        w.running = tasks
        # The socket buffers the frame; a dead worker shows up in its read loop.
        w.writer.write(encode_frame(task_message(w.token, tasks)))
        if self.settings.task_timeout_s > 0:  # 0 = no timeout
            w.timer = self._loop.call_later(self.settings.task_timeout_s, self._on_timeout, w, w.token)
        self.stats["batches"] += 1
        self.stats["tasks_sent"] += len(tasks)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(tasks))

    # -- results and failures ------------------------------------------------------------------

    def _on_reply(self, w: WorkerProcess, reply: tuple[Any, ...]) -> None:
        token, status, value = reply
        if token != w.token or not w.running:
            return  # a reply for a task already failed by a timeout
        tasks = w.running
        self._finish(w, None)
        settle(tasks, status, value)
        self._schedule_dispatch()

    def _on_timeout(self, w: WorkerProcess, token: int) -> None:
        if token != w.token or not w.running or w.retired:
            return
        seconds = self.settings.task_timeout_s
        log.warning("face engine: task timed out after %.1fs on worker %d; replacing it", seconds, w.pid)
        self.stats["timeouts"] += 1
        w.retired = True
        self._finish(w, TaskTimeout(f"no result within {seconds:g}s (engine.task_timeout_s); worker replaced"))
        w.kill()

    def _on_exit(self, w: WorkerProcess, returncode: int) -> None:
        if w in self.workers:
            self.workers.remove(w)
        if not w.retired:
            reason = exit_reason(w.pid, returncode)
            log.warning("face engine: %s; starting a replacement", reason)
            self.stats["worker_deaths"] += 1
            self._finish(w, WorkerDied(reason))
        if not self.closed:
            self._respawn_later(w.slot)

    def _finish(self, w: WorkerProcess, error: BaseException | None) -> None:
        """Clear the worker's running tasks, failing them with ``error`` if given."""
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        tasks, w.running = w.running, []
        if error is not None:
            for t in tasks:
                fail(t, error)

    # -- starting workers ----------------------------------------------------------------------

    async def _spawn(self, slot: int) -> WorkerProcess:
        plan = self.plan
        gpu = plan.gpu_for(slot)
        config = WorkerConfig(
            settings=dataclasses.replace(self.settings, descriptor=plan.descriptor),
            device=plan.dlib_device,
            descriptor_device=plan.descriptor_device,
            test_hooks=self._test_hooks,
        )
        w = await start_worker(slot, gpu, config, worker_env(self.settings.dlib_path, gpu))
        if self.closed:  # close() ran while this worker was starting
            w.writer.close()
            await w.proc.wait()
            raise EngineClosed("the face engine was closed")
        self.workers.append(w)
        w.read_loop = asyncio.ensure_future(self._read_loop(w))
        self._schedule_dispatch()
        return w

    async def _read_loop(self, w: WorkerProcess) -> None:
        try:
            while True:
                self._on_reply(w, await read_frame(w.reader))
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            pass  # the worker exited or was killed: its exit status says why
        returncode = await w.proc.wait()
        w.writer.close()
        self._on_exit(w, returncode)

    def _respawn_later(self, slot: int) -> None:
        task = asyncio.ensure_future(self._respawn(slot))
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, slot: int) -> None:
        for attempt in itertools.count():
            if self.closed:
                return
            try:
                await self._spawn(slot)
                self.stats["respawns"] += 1
                return
            except EngineClosed:
                return
            except Exception as exc:
                log.error("face engine: replacement worker failed to start: %s", exc)
                if not self.workers:  # nobody left to run the queue: fail it rather than hang
                    while self._pending:
                        fail(self._pending.popleft(), TaskFailed(f"no face engine worker could start: {exc}"))
                await asyncio.sleep(backoff_seconds(attempt, RESPAWN_BACKOFF_BASE_S, RESPAWN_BACKOFF_MAX_S))


async def _stop(w: WorkerProcess) -> None:
    """Wait for a worker told to exit; kill it after ``CLOSE_GRACE_S``."""
    try:
        await asyncio.wait_for(w.proc.wait(), CLOSE_GRACE_S)
    except TimeoutError:
        w.kill()
        await w.proc.wait()
    if w.read_loop is not None:
        await asyncio.gather(w.read_loop, return_exceptions=True)
