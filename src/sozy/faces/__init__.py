"""Faces stage: photo bytes → face boxes and 128-d dlib descriptors.

``FaceEngine`` (async process pool) is what the crawler and the API use;
``sozy.faces.analyze.FaceAnalyzer`` is the same work in-process (imports dlib).
"""

from __future__ import annotations

from sozy.faces.decode import decode_image
from sozy.faces.engine import FaceEngine
from sozy.faces.errors import (
    CorruptImage,
    EmptyImage,
    EngineClosed,
    FaceEngineError,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    TaskFailed,
    TaskTimeout,
    WorkerDied,
)
from sozy.faces.plan import plan_workers

__all__ = [
    "CorruptImage",
    "EmptyImage",
    "EngineClosed",
    "FaceEngine",
    "FaceEngineError",
    "ImageError",
    "ImageTooLarge",
    "NotAnImage",
    "TaskFailed",
    "TaskTimeout",
    "WorkerDied",
    "decode_image",
    "plan_workers",
]
