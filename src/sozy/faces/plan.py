"""How many face workers, on which device, each pinned to which GPU, batching how many
photos: decided from the settings and what the machine has. Pure, so it is testable
without the hardware (device counts are passed in)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sozy.config import Descriptor, EngineSettings
from sozy.faces.errors import FaceEngineError
from sozy.faces.models import model_id_for, resolve_detector

# Each CPU worker holds this many accepted tasks by default (one running, the rest queued).
TASKS_PER_WORKER = 4


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

    def gpu_for(self, slot: int) -> int | None:
        """The GPU the worker in ``slot`` is pinned to (None on CPU)."""
        return self.gpus[slot] if self.device == "cuda" else None


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
        batch = settings.gpu_batch
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
