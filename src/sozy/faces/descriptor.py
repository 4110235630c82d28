"""Face descriptors: aligned 150×150 chips → 128-d vectors, by ONNX Runtime or by dlib.

Both give dlib's ResNet vectors (tests hold them within 0.001 of each other);
``engine.descriptor`` picks one. The ONNX path runs dlib's own weights converted
to ONNX (``onnx_model``), all faces of a task in one call, on one thread per
worker process on CPU, or on onnxruntime-gpu's CUDA provider. The chips are
dlib's (``get_face_chips``, as ``compute_face_descriptor`` cuts them), so the
landmarks and the alignment do not change.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import dlib
import numpy as np

from sozy.config import Descriptor as DescriptorKind
from sozy.faces.errors import FaceEngineError

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # dlib's and face_recognition's default
# Faces per onnxruntime call: a crowd photo is split so memory stays bounded.
CPU_BATCH = 32
CUDA_BATCH = 256
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


class DescriptorUnavailable(FaceEngineError):
    """The descriptor backend asked for cannot run here (e.g. no CUDA provider)."""

    code = "descriptor_unavailable"


class Descriptor(Protocol):
    def describe_photos(
        self, images: Sequence[np.ndarray], shapes: Sequence[dlib.full_object_detections]
    ) -> list[np.ndarray]:
        """For each photo, its faces' descriptors as a ``[faces, 128]`` float32 array."""
        ...


def providers_for(device: str, available: Sequence[str]) -> list[str]:
    """onnxruntime providers for ``device``: CUDA first (CPU for what it lacks), or CPU alone."""
    if device == "cuda":
        if CUDA_PROVIDER not in available:
            raise DescriptorUnavailable(
                "engine.device is 'cuda' but onnxruntime has no CUDA provider: "
                "install onnxruntime-gpu (pip install 'sozy[gpu]', see docs/faces.md)"
            )
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device != "cpu":
        raise ValueError(f"descriptor device must be 'cpu' or 'cuda', not {device!r}")
    return [CPU_PROVIDER]


def batch_slices(count: int, batch: int) -> list[slice]:
    """Consecutive slices of at most ``batch`` items covering ``count`` items."""
    step = max(1, batch)
    return [slice(start, min(start + step, count)) for start in range(0, count, step)]


def face_chips(rgb: np.ndarray, shapes: dlib.full_object_detections) -> np.ndarray:
    """The ``[faces, 150, 150, 3]`` uint8 chips dlib's descriptor would see."""
    if not len(shapes):
        return np.zeros((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    return np.stack(dlib.get_face_chips(rgb, shapes, size=CHIP_SIZE, padding=CHIP_PADDING))


class OnnxDescriptor:
    """dlib's ResNet on ONNX Runtime: ``describe(chips)`` for a whole batch in one call."""

    def __init__(self, model: bytes, device: str = "cpu", batch: int | None = None) -> None:
        import onnxruntime as ort

        from sozy.faces.onnx_model import INPUT_NAME, OUTPUT_NAME

        self.device = device
        self.providers = providers_for(device, ort.get_available_providers())
        self.batch = batch or (CUDA_BATCH if device == "cuda" else CPU_BATCH)
        options = ort.SessionOptions()
        # One thread: the engine already runs one worker process per core.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused CPU fallbacks are noise
        # No memory arena: it keeps the high-water mark of the largest batch for good, and a
        # worker must come back to its rest after a crowd photo (issue 13: bounded worker memory).
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(model, options, providers=self.providers)
        self._input, self._output = INPUT_NAME, OUTPUT_NAME

    @property
    def active_providers(self) -> list[str]:
        return list(self._session.get_providers())

    def describe(self, chips: np.ndarray) -> np.ndarray:
        """``[N, 150, 150, 3]`` uint8 RGB chips → ``[N, 128]`` float32 descriptors."""
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
            raise ValueError(
                f"expected uint8 chips of shape [N, {CHIP_SIZE}, {CHIP_SIZE}, 3], got {chips.dtype} {chips.shape}"
            )
        if not len(chips):
            return np.zeros((0, 128), dtype=np.float32)
        chips = np.ascontiguousarray(chips)
        parts = [
            self._session.run([self._output], {self._input: chips[s]})[0] for s in batch_slices(len(chips), self.batch)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def describe_photos(
        self, images: Sequence[np.ndarray], shapes: Sequence[dlib.full_object_detections]
    ) -> list[np.ndarray]:
        chips = [face_chips(rgb, found) for rgb, found in zip(images, shapes, strict=True)]
        vectors = self.describe(np.concatenate(chips)) if chips else np.zeros((0, 128), np.float32)
        bounds = np.cumsum([0] + [len(c) for c in chips])
        return [vectors[a:b] for a, b in itertools.pairwise(bounds)]


class DlibDescriptor:
    """dlib's own ``face_recognition_model_v1`` (the reference the ONNX path is tested against)."""

    def __init__(self, weights: Path) -> None:
        self._model = dlib.face_recognition_model_v1(str(weights))

    def describe(self, chips: np.ndarray) -> np.ndarray:
        if not len(chips):
            return np.zeros((0, 128), dtype=np.float32)
        found = self._model.compute_face_descriptor(list(chips))
        return np.asarray([list(vector) for vector in found], dtype=np.float32)

    def describe_photos(
        self, images: Sequence[np.ndarray], shapes: Sequence[dlib.full_object_detections]
    ) -> list[np.ndarray]:
        if len(images) == 1:
            found = [self._model.compute_face_descriptor(images[0], shapes[0])]
        else:
            found = self._model.compute_face_descriptor(list(images), list(shapes))
        return [np.asarray([list(vector) for vector in v], dtype=np.float32).reshape(-1, 128) for v in found]


def load_descriptor(kind: DescriptorKind, device: str, weights: Path, cache_dir: Path | None = None) -> Descriptor:
    """The descriptor ``engine.descriptor`` names, on ``device`` (dlib's runs where dlib was built for)."""
    if kind == "dlib":
        return DlibDescriptor(weights)
    from sozy.faces.onnx_model import cached_model

    return OnnxDescriptor(cached_model(weights, cache_dir), device=device)
