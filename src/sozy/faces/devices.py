"""What the face workers' environment can run on, and the environment a worker starts with.

The question is asked of a short subprocess, so the engine's own process never imports
dlib or onnxruntime (and never initialises CUDA).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass

from sozy.faces.errors import FaceEngineError


@dataclass(frozen=True)
class DeviceProbe:
    """What the workers' environment can run on: dlib's CUDA, visible GPUs, onnxruntime's CUDA."""

    cuda_build: bool
    gpu_count: int
    onnx_cuda: bool


# engine.device = "cpu": nothing to ask.
CPU_ONLY = DeviceProbe(cuda_build=False, gpu_count=0, onnx_cuda=False)


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
        env=worker_env(dlib_path, gpu=None),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise FaceEngineError(f"cannot import dlib: {err.decode(errors='replace').strip()[-500:]}")
    cuda, gpus, onnx_cuda = out.split()
    return DeviceProbe(cuda_build=bool(int(cuda)), gpu_count=int(gpus), onnx_cuda=bool(int(onnx_cuda)))


def worker_env(dlib_path: str, gpu: int | None) -> dict[str, str]:
    """The environment a worker (or the probe) starts with."""
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
