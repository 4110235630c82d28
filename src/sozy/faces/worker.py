"""The engine's worker process: ``python -m sozy.faces.worker FD PARENT_PID``.

A worker is a plain subprocess, not a multiprocessing child: the engine sets
its environment (one BLAS thread, ``CUDA_VISIBLE_DEVICES``, a faster dlib
first on ``PYTHONPATH``) before the interpreter starts, and nothing of the
caller's ``__main__`` is re-imported. It talks to the engine over one socket
(inherited as file descriptor FD) in length-prefixed pickle frames:

- engine → worker: first a :class:`WorkerConfig`, then ``(token, kind, payload)``
  (an embed payload is ``(photo bytes, max_faces)``, a batch a list of those);
- worker → engine: ``("ready", info)`` or ``("init_failed", message)``, then
  ``(token, "ok", result)`` or ``(token, "error", FaceEngineError)``.

End of input (the engine closed its end, or died) makes the worker exit.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from sozy.config import EngineSettings

_HEADER = struct.Struct("!Q")

# Task kinds. The "_test_" ones exist only so the test suite can make a worker
# crash or hang on purpose; a worker refuses them unless started with test_hooks.
EMBED = "embed"
EMBED_BATCH = "embed_batch"
TEST_EXIT = "_test_exit"
TEST_SLEEP = "_test_sleep"


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to load its models; sent as the first frame."""

    settings: EngineSettings
    device: str  # where dlib runs
    descriptor_device: str = "cpu"  # where ONNX Runtime computes descriptors
    test_hooks: bool = False


def encode_frame(obj: Any) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    return pickle.loads(body)


def header_size() -> int:
    return _HEADER.size


def body_size(header: bytes) -> int:
    size: int = _HEADER.unpack(header)[0]
    return size


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fd, parent_pid = int(args[0]), int(args[1])
    _die_with_parent(parent_pid)
    # Ctrl-C reaches the whole process group; the engine decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = socket.socket(fileno=fd)
    try:
        config = _recv(conn)
        if config is None:
            return 0
        try:
            # Imported here, after the environment is in place, so that a
            # dlib on engine.dlib_path (first on PYTHONPATH) is the one loaded.
            from sozy.faces.analyze import FaceAnalyzer

            analyzer = FaceAnalyzer(config.settings, device=config.device, descriptor_device=config.descriptor_device)
            import dlib

            info = {
                "pid": os.getpid(),
                "model_id": analyzer.model_id,
                "detector": analyzer.detector,
                "dlib_version": dlib.__version__,
                "dlib_file": _extension_file(),
                "cuda": bool(dlib.DLIB_USE_CUDA),
                "blas": bool(dlib.DLIB_USE_BLAS),
                "descriptor": config.settings.descriptor,
                "descriptor_device": config.descriptor_device,
            }
        except Exception as exc:
            _send(conn, ("init_failed", f"{type(exc).__name__}: {exc}"))
            return 3
        _release_memory()  # what loading the models left behind
        _send(conn, ("ready", info))
        _serve(conn, analyzer, config)
    except (EOFError, ConnectionError):
        pass
    finally:
        conn.close()
    return 0


def _serve(conn: socket.socket, analyzer: Any, config: WorkerConfig) -> None:
    while True:
        message = _recv(conn)
        if message is None:
            return
        _send(conn, _answer(analyzer, message, config.test_hooks))
        message = None  # the photo and its pixels go before the next task
        _release_memory()


def _answer(analyzer: Any, message: tuple[Any, str, Any], test_hooks: bool) -> tuple[Any, str, Any]:
    from sozy.faces.errors import FaceEngineError, TaskFailed

    token, kind, payload = message
    try:
        return (token, "ok", _run(analyzer, kind, payload, test_hooks))
    except FaceEngineError as exc:
        return (token, "error", exc)
    except Exception as exc:  # a bug or a dlib failure on this photo: report it, keep serving
        return (token, "error", TaskFailed(f"{type(exc).__name__}: {exc}"))


def _release_memory() -> None:
    """Hand the heap's free pages back to the system after a task (glibc's malloc_trim).

    A large photo's pixels are freed when its task ends, but glibc keeps most of
    them mapped; the next large photo would then peak above the last one's rest.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _extension_file() -> str:
    """Where dlib's compiled module came from (its __init__.py may sit elsewhere)."""
    module = sys.modules.get("_dlib_pybind11") or sys.modules.get("dlib")
    return str(getattr(module, "__file__", "") or "")


def _run(analyzer: Any, kind: str, payload: Any, test_hooks: bool) -> Any:
    if kind == EMBED:
        data, max_faces = payload
        return analyzer.analyze(data, max_faces)
    if kind == EMBED_BATCH:
        return analyzer.analyze_batch([data for data, _ in payload], [cap for _, cap in payload])
    if test_hooks and kind == TEST_EXIT:
        os._exit(int(payload))
    if test_hooks and kind == TEST_SLEEP:
        time.sleep(float(payload))
        return os.getpid()
    raise ValueError(f"unknown task kind {kind!r}")


def _send(conn: socket.socket, obj: Any) -> None:
    conn.sendall(encode_frame(obj))


def _recv(conn: socket.socket) -> Any:
    header = _read_exact(conn, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(conn, body_size(header))
    if body is None:
        raise EOFError("engine closed the connection mid-frame")
    return decode_body(body)


def _read_exact(conn: socket.socket, size: int) -> bytes | None:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = conn.recv_into(view[got:], size - got)
        if n == 0:
            if got == 0:
                return None
            raise EOFError("engine closed the connection mid-frame")
        got += n
    return bytes(buffer)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when the engine's process dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # not fatal: EOF on the socket also ends the worker
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
