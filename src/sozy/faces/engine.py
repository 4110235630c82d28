"""FaceEngine: photo bytes → faces, in a pool of worker processes, from asyncio.

dlib holds the GIL, so parallel work needs processes. The pool is written for
this job rather than taken from ``concurrent.futures``, whose process pool
breaks as a whole when one worker dies. Here:

- each worker is a subprocess (``sozy.faces.worker``) with one socket to the
  engine; the event loop reads every socket and waits on every process, so
  nothing blocks the loop;
- a worker runs one task (or one batch, on a GPU) at a time; a task that
  outlives ``task_timeout_s`` fails with :class:`TaskTimeout` and its worker is
  killed; a worker that dies (crash, ``os._exit``, OOM kill) fails only the
  task it was running with :class:`WorkerDied`; either way a replacement starts
  and the other workers carry on;
- at most ``capacity`` tasks are accepted at once; ``embed`` waits for a slot
  beyond that (backpressure), and ``in_flight`` lets a server refuse early;
- ``close()`` stops every worker; an ``atexit`` hook and the workers' own
  parent-death signal make sure none outlives the process.
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
import socket
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sozy.backoff import backoff_seconds
from sozy.config import Descriptor, EngineSettings
from sozy.faces.errors import (
    EngineClosed,
    FaceEngineError,
    TaskFailed,
    TaskTimeout,
    WorkerDied,
)
from sozy.faces.models import model_id_for, resolve_detector
from sozy.faces.worker import (
    EMBED,
    EMBED_BATCH,
    WorkerConfig,
    body_size,
    decode_body,
    encode_frame,
    header_size,
)
from sozy.records import PhotoFaces

log = logging.getLogger(__name__)

# Each CPU worker holds this many accepted tasks by default (one running, the rest queued).
TASKS_PER_WORKER = 4
# How long a new worker may take to import dlib and load the models.
START_TIMEOUT_S = 120.0
# How long close() lets idle workers exit on their own before killing them.
CLOSE_GRACE_S = 2.0
# Waits between attempts to start a replacement worker that keeps failing: from this, doubling.
RESPAWN_BACKOFF_BASE_S = 0.5
RESPAWN_BACKOFF_MAX_S = 30.0


# -- device and worker planning (pure, so it is testable without the hardware) --------


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, on which device, each pinned to which GPU, batching how many photos."""

    device: str
    workers: int
    detector: str
    batch: int
    gpus: tuple[int | None, ...]
    capacity: int
    model_id: str
    descriptor: Descriptor = "onnx"
    # Where dlib runs (the CNN detector on "cuda") and where the descriptors are computed.
    dlib_device: str = "cpu"
    descriptor_device: str = "cpu"


def plan_workers(
    settings: EngineSettings,
    *,
    cpu_count: int,
    cuda_build: bool,
    gpu_count: int,
    onnx_cuda: bool = False,
    batch_size: int | None = None,
) -> WorkerPlan:
    """Decide device, worker count, GPU pinning, batch size and capacity.

    A GPU is usable by descriptors through onnxruntime-gpu's CUDA provider
    (``onnx_cuda``; with ``engine.descriptor = "dlib"``, a CUDA build of dlib), and
    by detection through a CUDA build of dlib (``cuda_build``, the mmod CNN).
    ``device="auto"`` picks CUDA when either can use a visible GPU. CPU:
    ``workers`` (0 = one per core), one photo per task. CUDA with dlib on the GPU:
    one worker per GPU; with only the descriptors there: one worker per core
    (detection stays on the CPU), sharing the GPUs round-robin (``workers`` > 0
    overrides either), ``gpu_batch`` photos per batch. ``batch_size`` overrides the
    batch on either device (tests use it to run the batched path on CPU). On a CUDA
    build of dlib without onnxruntime-gpu, descriptors stay with dlib on the GPU.
    """
    descriptor = settings.descriptor
    if descriptor == "onnx" and cuda_build and gpu_count > 0 and not onnx_cuda and settings.device != "cpu":
        descriptor = "dlib"  # the same vectors, on the GPU dlib was built for, rather than on a CPU
    descriptor_on_gpu = onnx_cuda if descriptor == "onnx" else cuda_build
    if settings.device == "cuda" and not (gpu_count > 0 and (cuda_build or descriptor_on_gpu)):
        if not (cuda_build or descriptor_on_gpu):
            why = (
                "onnxruntime has no CUDA provider and dlib was built without CUDA; install "
                "onnxruntime-gpu (pip install 'sozy[gpu]', see docs/faces.md)"
            )
        else:
            why = "no GPU is visible"
        raise FaceEngineError(f"engine.device is 'cuda' but {why}, or set engine.device = 'auto'")
    gpu_usable = gpu_count > 0 and (cuda_build or descriptor_on_gpu)
    device = "cuda" if settings.device in ("auto", "cuda") and gpu_usable else "cpu"
    dlib_device = "cuda" if device == "cuda" and cuda_build else "cpu"
    if device == "cuda":
        per_gpu = dlib_device == "cuda"  # else detection runs on the CPU: a worker per core
        workers = settings.workers if settings.workers > 0 else (gpu_count if per_gpu else max(1, cpu_count))
        gpus: tuple[int | None, ...] = tuple(i % gpu_count for i in range(workers))
        batch = max(1, settings.gpu_batch)
    else:
        workers = settings.workers if settings.workers > 0 else max(1, cpu_count)
        gpus = (None,) * workers
        batch = 1
    if batch_size is not None:
        batch = max(1, batch_size)
    detector = resolve_detector(settings.detector, dlib_device)
    # A batched worker needs a batch running and the next one gathering.
    per_worker = max(TASKS_PER_WORKER, 2 * batch)
    capacity = settings.max_in_flight if settings.max_in_flight > 0 else workers * per_worker
    return WorkerPlan(
        device=device,
        workers=workers,
        detector=detector,
        batch=batch,
        gpus=gpus,
        capacity=capacity,
        model_id=model_id_for(detector, settings.upsample, settings.upsample_below_px),
        descriptor=descriptor,
        dlib_device=dlib_device,
        descriptor_device="cuda" if device == "cuda" and descriptor_on_gpu else "cpu",
    )


def available_cpus() -> int:
    """Cores this process may run on (respects CPU affinity and container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class DeviceProbe:
    """What the workers' environment can run on: dlib's CUDA, visible GPUs, onnxruntime's CUDA."""

    cuda_build: bool
    gpu_count: int
    onnx_cuda: bool


# Run in a short subprocess. GPUs are counted by dlib when it was built with CUDA,
# else by the CUDA driver (libcuda) when onnxruntime has its CUDA provider.
_PROBE = """
import ctypes, dlib
cuda_build = bool(dlib.DLIB_USE_CUDA)
gpus = dlib.cuda.get_num_devices() if cuda_build else 0
try:
    import onnxruntime
    onnx_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
except ImportError:
    onnx_cuda = False
if onnx_cuda and not gpus:
    try:
        driver, count = ctypes.CDLL("libcuda.so.1"), ctypes.c_int(0)
        if driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0:
            gpus = count.value
    except OSError:
        pass
print(int(cuda_build), int(gpus), int(onnx_cuda))
"""


async def probe_devices(dlib_path: str = "") -> DeviceProbe:
    """Ask a short subprocess, so the engine's own process never imports dlib or
    onnxruntime (and never initialises CUDA)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PROBE,
        env=_worker_env(dlib_path, gpu=None),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise FaceEngineError(f"cannot import dlib: {err.decode(errors='replace').strip()[-500:]}")
    cuda, gpus, onnx_cuda = out.split()
    return DeviceProbe(cuda_build=bool(int(cuda)), gpu_count=int(gpus), onnx_cuda=bool(int(onnx_cuda)))


def _worker_env(dlib_path: str, gpu: int | None) -> dict[str, str]:
    env = dict(os.environ)
    # A faster dlib goes first; the rest of this process's path follows so the
    # worker imports the same sozy, even when it is run from a source checkout.
    path = [dlib_path] if dlib_path else []
    path += [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join(path)
    # One BLAS thread per worker: the pool already uses every core.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


# -- the pool --------------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    kind: str
    payload: Any
    future: asyncio.Future[Any]


@dataclass(eq=False)
class _Worker:
    slot: int
    gpu: int | None
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    info: dict[str, Any] = field(default_factory=dict)
    running: list[_Task] = field(default_factory=list)
    token: int = 0
    timer: asyncio.TimerHandle | None = None
    retired: bool = False  # killed by the engine (timeout, close): its exit is expected
    read_loop: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def idle(self) -> bool:
        return not self.running and not self.retired


_LIVE_ENGINES: weakref.WeakSet[FaceEngine] = weakref.WeakSet()


@atexit.register
def _kill_workers_at_exit() -> None:
    """Last resort when an engine was never closed: no worker outlives the interpreter."""
    for engine in list(_LIVE_ENGINES):
        engine._kill_all_now()


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
        self._workers: list[_Worker] = []
        self._pending: collections.deque[_Task] = collections.deque()
        self._slots: asyncio.Semaphore | None = None
        self._in_flight = 0
        self._started = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._dispatch_scheduled = False
        self._respawns: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
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
        return [w.pid for w in self._workers if w.proc.returncode is None]

    @property
    def busy_pids(self) -> list[int]:
        """Process ids of the workers running a task right now."""
        return [w.pid for w in self._workers if w.running]

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
        self._loop = asyncio.get_running_loop()
        if self.settings.device == "cpu":
            probe = DeviceProbe(cuda_build=False, gpu_count=0, onnx_cuda=False)
        else:
            probe = await probe_devices(self.settings.dlib_path)
        self._plan = plan_workers(
            self.settings,
            cpu_count=available_cpus(),
            cuda_build=probe.cuda_build,
            gpu_count=probe.gpu_count,
            onnx_cuda=probe.onnx_cuda,
            batch_size=self._batch_override,
        )
        self._slots = asyncio.Semaphore(self._plan.capacity)
        _LIVE_ENGINES.add(self)
        started = await asyncio.gather(
            *(self._spawn(slot) for slot in range(self._plan.workers)), return_exceptions=True
        )
        failures = [r for r in started if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise FaceEngineError(f"face engine could not start: {failures[0]}") from failures[0]
        info = self._workers[0].info
        log.info(
            "face engine: %d worker(s) on %s, detector %s, descriptor %s on %s, batch %d, capacity %d, "
            "model %s, dlib %s%s (%s)",
            self._plan.workers,
            self._plan.device,
            self._plan.detector,
            self._plan.descriptor,
            self._plan.descriptor_device,
            self._plan.batch,
            self._plan.capacity,
            self._plan.model_id,
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

    @property
    def dlib_file(self) -> str:
        """The dlib extension module the workers loaded (shows whether ``dlib_path`` took effect)."""
        return str(self._workers[0].info.get("dlib_file", "")) if self._workers else ""

    async def close(self) -> None:
        """Fail waiting tasks with :class:`EngineClosed` and stop every worker. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        self._closed = True
        for task in self._respawns:
            task.cancel()
        error = EngineClosed("the face engine was closed")
        while self._pending:
            _fail(self._pending.popleft(), error)
        workers, self._workers = self._workers, []
        for w in workers:
            busy = bool(w.running)
            w.retired = True
            self._finish(w, error)
            w.writer.close()  # end of input: an idle worker exits by itself
            if busy:  # its task was failed above; nothing is worth waiting for
                _kill(w)
        await asyncio.gather(*(self._stop(w) for w in workers), return_exceptions=True)
        await asyncio.gather(*self._respawns, return_exceptions=True)
        _LIVE_ENGINES.discard(self)

    async def _stop(self, w: _Worker) -> None:
        try:
            await asyncio.wait_for(w.proc.wait(), CLOSE_GRACE_S)
        except TimeoutError:
            _kill(w)
            await w.proc.wait()
        if w.read_loop is not None:
            await asyncio.gather(w.read_loop, return_exceptions=True)

    def _kill_all_now(self) -> None:
        # Called from atexit, when the event loop may be gone: plain os.kill.
        for w in self._workers:
            if w.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)

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
        assert self._slots is not None and self._loop is not None
        async with self._slots:
            self._check_open()
            self._in_flight += 1
            try:
                task = _Task(kind, payload, self._loop.create_future())
                self._pending.append(task)
                self._schedule_dispatch()
                return await task.future
            finally:
                self._in_flight -= 1

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosed("the face engine is closed")
        if self._plan is None:
            raise EngineClosed("the face engine is not started: call start() or use 'async with'")

    # -- dispatching --------------------------------------------------------------------------

    def _schedule_dispatch(self) -> None:
        # Deferred to the next loop turn so tasks submitted together leave together
        # (one batch on a GPU worker).
        if not self._dispatch_scheduled and self._loop is not None:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self._closed:
            return
        for w in self._workers:
            if not self._pending:
                return
            if w.idle:
                self._send(w, self._take_batch())

    def _take_batch(self) -> list[_Task]:
        """The next task, or up to ``batch`` embed tasks for a batched worker."""
        batch: list[_Task] = []
        while self._pending:
            task = self._pending[0]
            if task.future.done():  # the caller gave up while it waited
                self._pending.popleft()
                continue
            if batch and (task.kind != EMBED_BATCH or len(batch) >= self.batch):
                break
            batch.append(self._pending.popleft())
            if task.kind != EMBED_BATCH:
                break
        return batch

    def _send(self, w: _Worker, tasks: list[_Task]) -> None:
        if not tasks:
            return
        assert self._loop is not None
        w.token += 1
        w.running = tasks
        if tasks[0].kind == EMBED_BATCH:
            message = (w.token, EMBED_BATCH, [t.payload for t in tasks])
        else:
            message = (w.token, tasks[0].kind, tasks[0].payload)
        # The socket buffers the frame; a dead worker shows up in its read loop.
        w.writer.write(encode_frame(message))
        if self.settings.task_timeout_s > 0:  # 0 = no timeout
            w.timer = self._loop.call_later(self.settings.task_timeout_s, self._on_timeout, w, w.token)
        self.stats["batches"] += 1
        self.stats["tasks_sent"] += len(tasks)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(tasks))

    # -- results and failures ------------------------------------------------------------------

    def _on_reply(self, w: _Worker, reply: tuple[Any, ...]) -> None:
        token, status, value = reply
        if token != w.token or not w.running:
            return  # a reply for a task already failed by a timeout
        tasks = w.running
        self._finish(w, None)
        if status == "error":
            for t in tasks:
                _fail(t, value)
        elif tasks[0].kind == EMBED_BATCH:
            for t, item in zip(tasks, value, strict=False):
                if isinstance(item, BaseException):
                    _fail(t, item)
                elif not t.future.done():
                    t.future.set_result(item)
        else:
            if not tasks[0].future.done():
                tasks[0].future.set_result(value)
        self._schedule_dispatch()

    def _on_timeout(self, w: _Worker, token: int) -> None:
        if token != w.token or not w.running or w.retired:
            return
        seconds = self.settings.task_timeout_s
        log.warning("face engine: task timed out after %.1fs on worker %d; replacing it", seconds, w.pid)
        self.stats["timeouts"] += 1
        w.retired = True
        self._finish(w, TaskTimeout(f"no result within {seconds:g}s (engine.task_timeout_s); worker replaced"))
        _kill(w)

    def _on_exit(self, w: _Worker, returncode: int) -> None:
        if w in self._workers:
            self._workers.remove(w)
        if not w.retired:
            reason = _exit_reason(w.pid, returncode)
            log.warning("face engine: %s; starting a replacement", reason)
            self.stats["worker_deaths"] += 1
            self._finish(w, WorkerDied(reason))
        if not self._closed:
            self._respawn_later(w.slot)

    def _finish(self, w: _Worker, error: BaseException | None) -> None:
        """Clear the worker's running tasks, failing them with ``error`` if given."""
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        tasks, w.running = w.running, []
        if error is not None:
            for t in tasks:
                _fail(t, error)

    # -- starting workers ----------------------------------------------------------------------

    async def _spawn(self, slot: int) -> _Worker:
        plan = self._require_plan()
        gpu = plan.gpus[slot] if plan.device == "cuda" else None
        parent_sock, child_sock = socket.socketpair()
        try:
            child_fd = child_sock.fileno()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "import sys; from sozy.faces.worker import main; sys.exit(main())",
                str(child_fd),
                str(os.getpid()),
                pass_fds=(child_fd,),
                env=_worker_env(self.settings.dlib_path, gpu),
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock)
        w = _Worker(slot=slot, gpu=gpu, proc=proc, reader=reader, writer=writer)
        try:
            config = WorkerConfig(
                settings=dataclasses.replace(self.settings, descriptor=plan.descriptor),
                device=plan.dlib_device,
                descriptor_device=plan.descriptor_device,
                test_hooks=self._test_hooks,
            )
            writer.write(encode_frame(config))
            status, value = await asyncio.wait_for(_read_frame(reader), START_TIMEOUT_S)
            if status != "ready":
                raise FaceEngineError(f"worker failed to load the models: {value}")
        except (asyncio.IncompleteReadError, ConnectionError):
            returncode = await proc.wait()
            raise FaceEngineError(f"worker could not start: {_exit_reason(proc.pid, returncode)}") from None
        except BaseException:
            proc.kill()
            await proc.wait()
            writer.close()
            raise
        w.info = value
        if self._closed:  # close() ran while this worker was starting
            writer.close()
            await proc.wait()
            raise EngineClosed("the face engine was closed")
        self._workers.append(w)
        w.read_loop = asyncio.ensure_future(self._read_loop(w))
        self._schedule_dispatch()
        return w

    async def _read_loop(self, w: _Worker) -> None:
        try:
            while True:
                self._on_reply(w, await _read_frame(w.reader))
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
            if self._closed:
                return
            try:
                await self._spawn(slot)
                self.stats["respawns"] += 1
                return
            except EngineClosed:
                return
            except Exception as exc:
                log.error("face engine: replacement worker failed to start: %s", exc)
                if not self._workers:  # nobody left to run the queue: fail it rather than hang
                    while self._pending:
                        _fail(self._pending.popleft(), TaskFailed(f"no face engine worker could start: {exc}"))
                await asyncio.sleep(backoff_seconds(attempt, RESPAWN_BACKOFF_BASE_S, RESPAWN_BACKOFF_MAX_S))

    def _require_plan(self) -> WorkerPlan:
        if self._plan is None:
            raise EngineClosed("the face engine is not started: call start() or use 'async with'")
        return self._plan


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    header = await reader.readexactly(header_size())
    return decode_body(await reader.readexactly(body_size(header)))


def _fail(task: _Task, error: BaseException) -> None:
    if not task.future.done():
        task.future.set_exception(error)


def _kill(w: _Worker) -> None:
    with contextlib.suppress(ProcessLookupError):
        w.proc.kill()


def _exit_reason(pid: int, returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"worker {pid} was killed by {name}{hint}"
    return f"worker {pid} exited with code {returncode}"
