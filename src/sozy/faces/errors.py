"""Typed errors of the face engine.

Every error carries a short, stable ``code`` that the API returns and the
crawler records. They cross process boundaries by pickling, so each takes a
single message argument and keeps nothing else on the instance.
"""

from __future__ import annotations


class FaceEngineError(Exception):
    """Base of everything the face engine raises on purpose."""

    code: str = "engine_error"


class ImageError(FaceEngineError):
    """The input is not a usable photo. The caller's fault; retrying will not help."""

    code = "bad_image"


class EmptyImage(ImageError):
    code = "empty_image"


class NotAnImage(ImageError):
    """HTML, text or any bytes that are not one of the supported image formats."""

    code = "not_an_image"


class CorruptImage(ImageError):
    """Looks like an image but cannot be decoded (truncated, damaged)."""

    code = "corrupt_image"


class ImageTooLarge(ImageError):
    """More pixels than ``engine.max_pixels`` (decompression-bomb guard)."""

    code = "too_many_pixels"


class TaskFailed(FaceEngineError):
    """The engine could not finish this task; the photo itself may be fine."""

    code = "engine_failed"


class WorkerDied(TaskFailed):
    """The worker process running the task exited (crash, kill, out of memory)."""

    code = "worker_died"


class TaskTimeout(TaskFailed):
    """The task ran longer than ``engine.task_timeout_s``; its worker was replaced."""

    code = "task_timeout"


class EngineClosed(FaceEngineError):
    """The engine was closed (or never started) when the task was submitted or ran."""

    code = "engine_closed"
