"""FaceEngine: photo bytes → faces, in a pool of worker processes, from asyncio.

dlib holds the GIL, so parallel work needs processes. The pool is written for
this job rather than taken from ``concurrent.futures``, whose process pool
breaks as a whole when one worker dies. Here:

- each worker is a subprocess (``sozy.faces.worker``) with one socket to the
  engine; the event loop reads every socket and waits on every process, so
  nothing blocks the loop (``sozy.faces.process``);
- how many workers, on which device, batching how many photos is planned from
  the settings and a probe of the machine (``sozy.faces.plan``, ``.devices``);
- a worker runs one task (or one batch, on a GPU: ``sozy.faces.tasks``) at a
  time; a task that outlives ``task_timeout_s`` fails with :class:`TaskTimeout`
  and its worker is killed; a worker that dies (crash, ``os._exit``, OOM kill)
  fails only the task it was running with :class:`WorkerDied`; either way a
  replacement starts and the other workers carry on (``sozy.faces.pool``);
- at most ``capacity`` tasks are accepted at once; ``embed`` waits for a slot
  beyond that (backpressure), and ``in_flight`` lets a server refuse early;
- ``close()`` stops every worker; an ``atexit`` hook and the workers' own
  parent-death signal make sure none outlives the process.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Sequence
from typing import Any

from sozy.config import EngineSettings
from sozy.faces.devices import CPU_ONLY, probe_devices
from sozy.faces.errors import EngineClosed, FaceEngineError
from sozy.faces.plan import WorkerPlan, available_cpus, plan_workers
from sozy.faces.pool import WorkerPool
from sozy.faces.worker import EMBED, EMBED_BATCH
from sozy.records import PhotoFaces

log = logging.getLogger(__name__)


class FaceEngine:
    """Async face embedding on a pool of worker processes.

    ::

        async with FaceEngine(settings.engine) as engine:
            photo = await engine.embed(jpeg_bytes)        # PhotoFaces, largest face first

    ``embed`` raises :class:`ImageError` for bad input (the photo's fault) and
    :class:`TaskFailed` when the engine could not finish (worker died, timeout).
    """

    def __init__(
        self,
        settings: EngineSettings,
        *,
        batch_size: int | None = None,
        test_hooks: bool = False,
    ) -> None:
        """``batch_size`` overrides the batch per worker task (default: ``gpu_batch``
        on CUDA, 1 on CPU). ``test_hooks`` is for the test suite only: it lets
        workers accept tasks that crash or hang them on purpose."""
        self.settings = settings
        self._batch_override = batch_size
        self._test_hooks = test_hooks
        self._plan: WorkerPlan | None = None
        self._pool: WorkerPool | None = None
        self._slots: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._started = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self.stats: collections.Counter[str] = collections.Counter()

    # -- public attributes ---------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Number of worker processes the pool keeps running."""
        return self._require_plan().workers

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda"``."""
        return self._require_plan().device

    @property
    def model_id(self) -> str:
        """Stored with every vector, e.g. ``dlib_resnet_v1+5pt/hog-up0..1``."""
        return self._require_plan().model_id

    @property
    def batch(self) -> int:
        """Photos per worker task (1 on CPU)."""
        return self._require_plan().batch

    @property
    def capacity(self) -> int:
        """Most tasks accepted at once; further ``embed`` calls wait."""
        return self._require_plan().capacity

    @property
    def in_flight(self) -> int:
        """Tasks accepted and not yet finished (queued or running)."""
        return self._in_flight

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers."""
        workers = self._pool.workers if self._pool is not None else []
        return [w.pid for w in workers if w.proc.returncode is None]

    @property
    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a task right now."""
        workers = self._pool.workers if self._pool is not None else []
        return [w.pid for w in workers if w.running]

    @property
    def dlib_file(self) -> str:
        """The dlib extension module the workers loaded (shows whether ``dlib_path`` took effect)."""
        workers = self._pool.workers if self._pool is not None else []
        return str(workers[0].info.get("dlib_file", "")) if workers else ""

    # -- life cycle ------------------------------------------------------------------------

    async def __aenter__(self) -> FaceEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Plan the pool, start every worker and wait until all have loaded their models."""
        if self._started:
            raise RuntimeError("FaceEngine.start() called twice")
        if self._closed:
            raise EngineClosed("the face engine was closed")
        self._started = True
        probe = CPU_ONLY if self.settings.device == "cpu" else await probe_devices(self.settings.dlib_path)
        self._plan = plan = plan_workers(
            self.settings,
            cpu_count=available_cpus(),
            cuda_build=probe.cuda_build,
            gpu_count=probe.gpu_count,
            onnx_cuda=probe.onnx_cuda,
            batch_size=self._batch_override,
        )
        self._slots = asyncio.Semaphore(plan.capacity)
        self._pool = pool = WorkerPool(self.settings, plan, self.stats, test_hooks=self._test_hooks)
        if self._closing is not None:  # close() ran while the devices were probed
            await pool.close()
        failures = await pool.start()
        if failures:
            await self.close()
            raise FaceEngineError(f"face engine could not start: {failures[0]}") from failures[0]
        self._log_start(plan, pool.workers[0].info)

    def _log_start(self, plan: WorkerPlan, info: dict[str, Any]) -> None:
        log.info(
            "face engine: %d worker(s) on %s, detector %s, descriptor %s on %s, batch %d, capacity %d, "
            "model %s, dlib %s%s (%s)",
            plan.workers,
            plan.device,
            plan.detector,
            plan.descriptor,
            plan.descriptor_device,
            plan.batch,
            plan.capacity,
            plan.model_id,
            info.get("dlib_version"),
            " with BLAS" if info.get("blas") else "",
            info.get("dlib_file"),
        )
        dlib_path = self.settings.dlib_path
        if dlib_path and not str(info.get("dlib_file", "")).startswith(os.path.abspath(dlib_path)):
            log.warning(
                "face engine: engine.dlib_path is %s but workers loaded dlib from %s (is the build there?)",
                dlib_path,
                info.get("dlib_file"),
            )

    async def close(self) -> None:
        """Fail waiting tasks with :class:`EngineClosed` and stop every worker. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._closed = True
        if self._pool is not None:
            await self._pool.close()

    # -- submitting work ---------------------------------------------------------------------

    async def embed(self, data: bytes, max_faces: int | None = None) -> PhotoFaces:
        """The largest faces in one photo (largest first, boxes in the photo's pixels).

        ``max_faces`` (default ``engine.max_faces``) are described; every face is
        counted in ``faces_in_image``.

        Waits for a free slot when ``capacity`` tasks are already in flight.
        Raises :class:`ImageError`, :class:`TaskFailed` or :class:`EngineClosed`.
        """
        kind = EMBED_BATCH if self.batch > 1 else EMBED
        result: PhotoFaces = await self._submit(kind, (bytes(data), max_faces))
        return result

    async def embed_many(self, items: Sequence[bytes]) -> list[PhotoFaces | FaceEngineError]:
        """``embed`` for each photo, concurrently; each failure is returned in its place."""
        results = await asyncio.gather(*(self.embed(item) for item in items), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, FaceEngineError):
                raise r
        return list(results)  # type: ignore[arg-type]

    async def _test_task(self, kind: str, payload: Any) -> Any:
        """Test suite only: run a ``_test_*`` task (crash or hang a worker on purpose)."""
        if not self._test_hooks:
            raise RuntimeError("start the engine with test_hooks=True to run test tasks")
        return await self._submit(kind, payload)

    async def _submit(self, kind: str, payload: Any) -> Any:
        self._check_open()
        assert self._slots is not None and self._pool is not None
        async with self._slots:
            self._check_open()
            self._in_flight += 1
            try:
                return await self._pool.submit(kind, payload)
            finally:
                self._in_flight -= 1

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed("the face engine is closed")
        if self._plan is None:
            raise EngineClosed("the face engine is not started: call start() or use 'async with'")

    def _require_plan(self) -> WorkerPlan:
        if self._plan is None:
            raise EngineClosed("the face engine is not started: call start() or use 'async with'")
        return self._plan
