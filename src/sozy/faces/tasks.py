"""Tasks waiting for a face worker: how they leave the queue (alone, or batched for a
GPU worker), what a worker is sent, and how its reply settles them."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import Any

from sozy.faces.worker import EMBED_BATCH


@dataclass(eq=False)
class Task:
    """One accepted request: ``kind`` and ``payload`` go to a worker, ``future`` gets the answer."""

    kind: str
    payload: Any
    future: asyncio.Future[Any]


def fail(task: Task, error: BaseException) -> None:
    """Fail ``task`` unless its caller already has an answer (or gave up)."""
    if not task.future.done():
        task.future.set_exception(error)


def take_batch(pending: collections.deque[Task], batch: int) -> list[Task]:
    """The next task, or up to ``batch`` embed tasks for a batched worker."""
    tasks: list[Task] = []
    while pending:
        task = pending[0]
        if task.future.done():  # the caller gave up while it waited
            pending.popleft()
            continue
        if tasks and (task.kind != EMBED_BATCH or len(tasks) >= batch):
            break
        tasks.append(pending.popleft())
        if task.kind != EMBED_BATCH:
            break
    return tasks


def task_message(token: int, tasks: list[Task]) -> tuple[int, str, Any]:
    """The frame a worker is sent: one task, or one batch of embed tasks."""
    if tasks[0].kind == EMBED_BATCH:
        return (token, EMBED_BATCH, [t.payload for t in tasks])
    return (token, tasks[0].kind, tasks[0].payload)


def settle(tasks: list[Task], status: str, value: Any) -> None:
    """Answer ``tasks`` from a worker's reply: one error for all, or a result (per item for a batch)."""
    if status == "error":
        for t in tasks:
            fail(t, value)
    elif tasks[0].kind == EMBED_BATCH:
        for t, item in zip(tasks, value, strict=False):
            if isinstance(item, BaseException):
                fail(t, item)
            elif not t.future.done():
                t.future.set_result(item)
    elif not tasks[0].future.done():
        tasks[0].future.set_result(value)
