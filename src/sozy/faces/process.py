"""One face worker process as the engine sees it: started with its own socket, greeted
with its settings, read frame by frame, killed, and its exit explained."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from sozy.faces.errors import FaceEngineError
from sozy.faces.tasks import Task
from sozy.faces.worker import WorkerConfig, body_size, decode_body, encode_frame, header_size

# How long a new worker may take to import dlib and load the models.
START_TIMEOUT_S = 120.0


@dataclass(eq=False)
class WorkerProcess:
    """A started worker and what it is doing."""

    slot: int
    gpu: int | None
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    info: dict[str, Any] = field(default_factory=dict)  # the worker's "ready" report (dlib version, file)
    running: list[Task] = field(default_factory=list)
    token: int = 0  # of the task (or batch) running: a late reply to an earlier one is ignored
    timer: asyncio.TimerHandle | None = None
    retired: bool = False  # killed by the engine (timeout, close): its exit is expected
    read_loop: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def idle(self) -> bool:
        return not self.running and not self.retired

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


async def start_worker(slot: int, gpu: int | None, config: WorkerConfig, env: dict[str, str]) -> WorkerProcess:
    """Start a worker, send it ``config`` and wait until it has loaded the models.

    Raises FaceEngineError when it cannot start or load them; nothing is left running.
    """
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
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )
    except BaseException:
        parent_sock.close()
        raise
    finally:
        child_sock.close()
    reader, writer = await asyncio.open_connection(sock=parent_sock)
    try:
        writer.write(encode_frame(config))
        status, value = await asyncio.wait_for(read_frame(reader), START_TIMEOUT_S)
        if status != "ready":
            raise FaceEngineError(f"worker failed to load the models: {value}")
    except (asyncio.IncompleteReadError, ConnectionError):
        returncode = await proc.wait()
        raise FaceEngineError(f"worker could not start: {exit_reason(proc.pid, returncode)}") from None
    except BaseException:
        proc.kill()
        await proc.wait()
        writer.close()
        raise
    return WorkerProcess(slot=slot, gpu=gpu, proc=proc, reader=reader, writer=writer, info=value)


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame a worker sent (IncompleteReadError once it is gone)."""
    header = await reader.readexactly(header_size())
    return decode_body(await reader.readexactly(body_size(header)))


def exit_reason(pid: int, returncode: int) -> str:
    """Why a worker stopped, in words for the log and for the task it was running."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if -returncode == signal.SIGKILL else ""
        return f"worker {pid} was killed by {name}{hint}"
    return f"worker {pid} exited with code {returncode}"
